"""`python -m sandbox --host 127.0.0.1 --port 8420 [--data-dir DIR] [--rate-limit N]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from sandbox.server import READY_PREFIX, serve


def _rate(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError("a whole number of requests per second, 0 for none")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Local Stripe sandbox (localstripe plus Stripe-faithful extensions).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420, help="0 picks a free port")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="load and save state in DIR/state.pickle (default: memory only)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate,
        default=0,
        metavar="N",
        help="answer 429 past N API requests in any moving second, as Stripe does (default 0: no limit)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready(port: int) -> None:
        print(f"{READY_PREFIX}http://{args.host}:{port}", flush=True)

    await serve(args.host, args.port, args.data_dir, stop, ready, access_log=args.verbose, rate_limit=args.rate_limit)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
    )
    try:
        asyncio.run(_main(args))
    except OSError as exc:  # typically the port is taken
        print(f"sandbox: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
