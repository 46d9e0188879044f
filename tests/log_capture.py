"""Every record the root logger hands its handlers during a test, as text (for leak scans and for
checking the log's own format). One place attaches and removes the handler and restores the
root's level, so a failing test never leaves a capture behind for the next one."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def root_log(
    root_level: int, *, handler_level: int = logging.NOTSET, formatter: logging.Formatter | None = None
) -> Iterator[io.StringIO]:
    """The root logger at `root_level`, writing into the yielded stream (with `formatter`, if given)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    if formatter is not None:
        handler.setFormatter(formatter)
    handler.setLevel(handler_level)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(root_level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
