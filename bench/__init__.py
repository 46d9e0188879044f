"""Benchmarks: `python -m bench.pages` (page queries at scale). Not part of `make test`."""
