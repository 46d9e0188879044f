"""`billy`: operator commands for an instance (migrate, sync), run with the instance's settings."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from services.config import PROJECT_ROOT, get_settings
from services.logging_setup import install_scrubber


def migrate(database_url: str | None = None) -> None:
    """Bring the store's schema to the newest migration."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.attributes["configure_logging"] = False
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration is noise at start-up
    if database_url:
        cfg.attributes["database_url"] = database_url
    command.upgrade(cfg, "head")


def _sync() -> int:
    from services import sync

    started = time.monotonic()
    outcome = sync.backfill()
    for resource, status in outcome.items():
        print(f"{resource:10} {status}")
    print(f"took {time.monotonic() - started:.1f}s")
    return 0 if all(s == "done" for s in outcome.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("sync", help="backfill the store from Stripe now, printing each resource's result")
    args = parser.parse_args(argv)
    install_scrubber(get_settings().log_level)
    if args.command == "migrate":
        migrate()
        return 0
    if args.command == "sync":
        return _sync()
    return 2


if __name__ == "__main__":
    sys.exit(main())
