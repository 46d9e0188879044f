"""`billy`: operator commands for an instance (migrate, sync, audit verify), run with the instance's settings."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from services.config import PROJECT_ROOT, get_settings
from services.errors import SettingsInvalid
from services.logging_setup import install_scrubber
from services.models import utcnow


def alembic_config(database_url: str | None = None) -> Any:
    """alembic's configuration for this project (and `database_url`, default: the settings')."""
    # One line per migration (and per autogenerate plugin, logged on import) is noise at start-up.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.attributes["configure_logging"] = False
    if database_url:
        cfg.attributes["database_url"] = database_url
    return cfg


def migrate(database_url: str | None = None, revision: str = "head") -> None:
    """Bring the store's schema to the newest migration (or up to `revision`)."""
    # alembic announces each plugin (on import) and step at INFO, which reads like a fault on a
    # healthy start.
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        from alembic import command

        command.upgrade(alembic_config(database_url), revision)
    finally:
        logging.disable(previous)


def _sync() -> int:
    """Backfill now, printing each resource's outcome as it ends; exit 1 unless all are done."""
    import threading

    from services import sync
    from services.permissions import Actor

    started, since = time.monotonic(), utcnow()
    result: dict[str, str] = {}
    runner = threading.Thread(target=lambda: result.update(sync.backfill()), daemon=True)
    runner.start()
    shown: set[str] = set()
    while True:
        runner.join(1.0)
        for row in sync.progress(Actor.system()):
            finished_now = row.finished_at is not None and row.finished_at >= since
            if finished_now and row.resource not in shown:
                shown.add(row.resource)
                slowed = f", slowed {row.throttled_count}x by rate limits" if row.throttled_count else ""
                note = f"  {row.last_error}" if row.last_error else ""
                print(f"{row.resource:16} {row.status:8} {row.synced_count:>9,} objects{slowed}{note}", flush=True)
        if not runner.is_alive():
            break
    print(f"took {time.monotonic() - started:.1f}s")
    return 0 if result and all(s == "done" for s in result.values()) else 1


def _audit_verify() -> int:
    from services import audit

    result = audit.verify()
    print(result.describe())
    return 0 if result.ok else 1


def _rebuild_derived() -> int:
    """Rollups and search index again from the mirror tables, in one transaction."""
    from sqlmodel import Session

    from services.db import run_transaction
    from services.rollups import rebuild_rollups
    from services.search import rebuild_search_index

    def rebuild(session: Session) -> dict[str, int]:
        rows = rebuild_rollups(session)
        rebuild_search_index(session)
        return rows

    rows = run_transaction(rebuild)
    for table, count in rows.items():
        print(f"{table}: {count} rows summed from the mirror")
    if get_settings().resolved_database_url.startswith("sqlite"):
        print("search index: re-filled from customers and charges")
    return 0


def _rotate_master_key() -> int:
    """Re-encrypt the local secret store under a new master key (see LocalEncryptedSecretStore).
    Stop the app first or not: a running instance reloads the key when it next reads a secret."""
    from services.secrets import LocalEncryptedSecretStore, get_secret_store

    store = get_secret_store()
    if not isinstance(store, LocalEncryptedSecretStore):
        print("billy: this instance keeps its secrets in Azure Key Vault, which manages its own keys.", file=sys.stderr)
        return 2
    count = store.rotate_master_key()
    print(f"master key rotated: {count} secrets re-encrypted; the old key opens none of them.")
    print(f"back up the new key: {store.master_key_file}")
    return 0


def _shown_url(url: str) -> str:
    """The store's address as a start log may show it: any password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("sync", help="backfill the store from Stripe now, printing each resource's result")
    sub.add_parser(
        "rebuild-derived",
        help="re-sum the dashboard's rollups and re-fill SQLite's search index from the mirror "
        "(after a TRUNCATE, a VACUUM or a restore)",
    )
    sub.add_parser(
        "rotate-master-key",
        help="re-encrypt the local secret store under a new master key (safe to run again after a crash)",
    )
    audit_parser = sub.add_parser("audit", help="the audit log")
    audit_sub = audit_parser.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="walk the audit log's hash chain and name the first broken row (exit 1)")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsInvalid as exc:  # a mistyped BILLY_* variable: one line saying which, no traceback
        print(f"billy: {exc}", file=sys.stderr)
        return 2
    install_scrubber(settings.log_level)
    if args.command == "migrate":
        migrate()
        print(f"store: {_shown_url(settings.resolved_database_url)} (schema up to date)")
        return 0
    if args.command == "sync":
        return _sync()
    if args.command == "rebuild-derived":
        return _rebuild_derived()
    if args.command == "rotate-master-key":
        return _rotate_master_key()
    if args.command == "audit" and args.audit_command == "verify":
        return _audit_verify()
    return 2


if __name__ == "__main__":
    sys.exit(main())
