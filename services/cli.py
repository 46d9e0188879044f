"""`billy`: operator commands for an instance (migrate, sync, audit verify), run with the instance's settings.

`provision-org`, `set-plan` and `handover` are the control plane's way in (DESIGN, Tenancy): it runs
them as processes inside the instance and reads one JSON line from their standard output.
`control-request` is the same three for a control plane that cannot reach the process's standard
input and output (a Container Apps job on Azure, controlplane/azure_seeding.py): the request and the
answer pass through the instance's own secret store instead.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
import time
from datetime import datetime
from typing import Any

from services.config import PROJECT_ROOT, get_settings
from services.errors import BillyError, SettingsInvalid, ValidationFailed
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


def _aware_time(text: str) -> datetime:
    """An ISO 8601 instant with its time zone (argparse's `type`): a bare local time would be read
    differently by the control plane and the instance."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2027-01-31T12:00:00Z") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z or +00:00")
    return at


def _read_password() -> str:
    """The Owner's password from standard input's first line: never an argument, which any user of
    the machine can read in the process list, and never echoed when typed."""
    if sys.stdin.isatty():
        return getpass.getpass("Owner's password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _say(answer: dict[str, Any]) -> None:
    """The one line provisioning parses: nothing else may reach stdout."""
    print(json.dumps(answer), flush=True)


def _handover_answer() -> dict[str, Any]:
    from services.handover import issue_handover

    link = issue_handover()
    return {"handover_token": link.token, "expires_at": link.expires_at.isoformat()}


def _seeded(
    org_name: str, plan: str, owner_email: str, owner_name: str, password: str, trial_ends_at: datetime
) -> dict[str, Any]:
    """Migrate first: provisioning may seed an instance whose web process has never started."""
    from services.organization import seed_organization

    migrate()
    seed_organization(org_name, plan, owner_email, owner_name, password, trial_ends_at)
    return _handover_answer()


def _plan_set(plan: str, trial_ends_at: datetime | None, plan_chosen: bool | None) -> dict[str, Any]:
    from services.organization import set_plan_from_control_plane

    org = set_plan_from_control_plane(plan, trial_ends_at=trial_ends_at, plan_chosen=plan_chosen)
    return {"plan": org.plan, "trial_ends_at": org.trial_ends_at.isoformat(), "plan_chosen": org.plan_chosen}


def _provision_org(args: argparse.Namespace) -> int:
    password = _read_password()
    if not password:
        print("billy: give the Owner's password on standard input (its first line).", file=sys.stderr)
        return 2
    _say(_seeded(args.org_name, args.plan, args.owner_email, args.owner_name, password, args.trial_ends_at))
    return 0


def _set_plan(args: argparse.Namespace) -> int:
    _say(_plan_set(args.plan, args.trial_ends_at, args.plan_chosen))
    return 0


def _handover(_: argparse.Namespace) -> int:
    _say(_handover_answer())
    return 0


# --- the same commands, asked through the secret store (a job's form) ----------------------------

# Each command's fields in a request: (required, optional). Anything else is refused, so a control
# plane newer than this instance hears so instead of having a field silently ignored.
_REQUEST_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "provision-org": (
        frozenset({"org_name", "plan", "owner_email", "owner_name", "password", "trial_ends_at"}),
        frozenset(),
    ),
    "set-plan": (frozenset({"plan"}), frozenset({"trial_ends_at", "plan_chosen"})),
    "handover": (frozenset(), frozenset()),
}


def _request_time(request: dict[str, Any], name: str) -> datetime:
    value = request.get(name)
    try:
        if not isinstance(value, str):
            raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time")
        return _aware_time(value)
    except argparse.ArgumentTypeError as exc:
        raise ValidationFailed(f"The request's {name} is not usable: {exc}. Nothing was changed.") from None


def _request_text(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str):
        raise ValidationFailed(f"The request's {name} is not text. Nothing was changed.")
    return value


def _checked_request(raw: str) -> dict[str, Any]:
    """A request as the control plane wrote it, checked whole before anything is done: a command this
    instance runs, its fields and no others, and still within its time (a request the control plane
    stopped waiting for is not carried out late)."""
    try:
        request = json.loads(raw)
    except ValueError:
        request = None
    if not isinstance(request, dict):
        raise ValidationFailed("The control plane's request is not a JSON object. Nothing was changed.")
    command = request.get("command")
    if not isinstance(command, str) or command not in _REQUEST_FIELDS:
        raise ValidationFailed(f"This instance does not run {command!r} for the control plane. Nothing was changed.")
    required, optional = _REQUEST_FIELDS[command]
    given = set(request) - {"command", "expires_at"}
    if required - given or given - required - optional:
        wrong = sorted(required - given) + sorted(given - required - optional)
        raise ValidationFailed(f"The {command} request lacks or has unexpected fields: {', '.join(wrong)}.")
    if _request_time(request, "expires_at") <= utcnow():
        raise ValidationFailed("The control plane's request has expired. Nothing was changed.")
    return request


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    command = request["command"]
    if command == "provision-org":
        password = _request_text(request, "password")
        if not password:
            raise ValidationFailed("The request carries no password for the Owner. Nothing was changed.")
        return _seeded(
            _request_text(request, "org_name"),
            _request_text(request, "plan"),
            _request_text(request, "owner_email"),
            _request_text(request, "owner_name"),
            password,
            _request_time(request, "trial_ends_at"),
        )
    if command == "set-plan":
        chosen = request.get("plan_chosen")
        if chosen is not None and not isinstance(chosen, bool):
            raise ValidationFailed("The request's plan_chosen is not true or false. Nothing was changed.")
        trial = _request_time(request, "trial_ends_at") if request.get("trial_ends_at") is not None else None
        return _plan_set(_request_text(request, "plan"), trial, chosen)
    return _handover_answer()


def _control_request(args: argparse.Namespace) -> int:
    """Carry out the request stored under `--request` and store the answer under `--answer`, in this
    instance's own secret store; stdout stays empty (on Azure it goes to the environment's log).

    The request is deleted as soon as it is read, before anything else: it holds the Owner's password
    for a seed, and it is carried out at most once. A refusal is answered too (`{"error": ...}`, exit 2),
    so the control plane can say why."""
    from services.secrets import get_secret_store

    store = get_secret_store()
    raw = store.get(args.request)
    if raw is not None:
        store.delete(args.request)
    try:
        if raw is None:
            raise ValidationFailed(
                f"There is no request {args.request!r} in this instance's secret store (already run, or withdrawn)."
            )
        answer, code = _answer(_checked_request(raw)), 0
    except BillyError as exc:
        answer, code = {"error": exc.message}, 2
    store.set(args.answer, json.dumps(answer))
    if code:
        print(f"billy: {answer['error']}", file=sys.stderr)
    return code


def _control_plane_commands(sub: Any) -> None:
    """The commands provisioning runs inside the instance (each prints one JSON line, or, for
    `control-request`, stores it)."""
    provision = sub.add_parser(
        "provision-org",
        help="create the organisation and its Owner (password on stdin's first line), print a hand-over token",
    )
    provision.add_argument("--org-name", required=True)
    provision.add_argument("--plan", required=True)
    provision.add_argument("--owner-email", required=True)
    provision.add_argument("--owner-name", required=True)
    provision.add_argument("--trial-ends-at", required=True, type=_aware_time, help="ISO 8601 with a time zone")
    set_plan = sub.add_parser("set-plan", help="write the plan and trial as the control plane has them")
    set_plan.add_argument("--plan", required=True)
    set_plan.add_argument("--trial-ends-at", type=_aware_time, help="ISO 8601 with a time zone (default: unchanged)")
    chosen = set_plan.add_mutually_exclusive_group()
    chosen.add_argument(
        "--plan-chosen", dest="plan_chosen", action="store_const", const=True, default=None, help="the plan is paid for"
    )
    chosen.add_argument(
        "--trial", dest="plan_chosen", action="store_const", const=False, help="on the trial (read-only once it ends)"
    )
    sub.add_parser("handover", help="print a fresh 60-second hand-over sign-in token for the Owner")
    request = sub.add_parser(
        "control-request",
        help="run the control plane's request kept in the secret store under --request (deleted once read); "
        "write the answer there under --answer",
    )
    request.add_argument("--request", required=True, metavar="SECRET_NAME")
    request.add_argument("--answer", required=True, metavar="SECRET_NAME")


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
    _control_plane_commands(sub)
    args, unexpected = parser.parse_known_args(argv)
    if unexpected:  # argparse would repeat them, and one may be a password typed where it must not go
        print(
            f"billy: {len(unexpected)} unexpected argument(s), not repeated here in case one is a secret; "
            "a password goes on standard input.",
            file=sys.stderr,
        )
        return 2
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
    return _control_plane_command(args)


def _control_plane_command(args: argparse.Namespace) -> int:
    """Run one of the control plane's commands; input it refuses is one line on stderr and exit 2."""
    commands = {
        "provision-org": _provision_org,
        "set-plan": _set_plan,
        "handover": _handover,
        "control-request": _control_request,
    }
    if args.command not in commands:
        return 2
    try:
        return commands[args.command](args)
    except BillyError as exc:
        print(f"billy: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
