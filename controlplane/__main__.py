"""`python -m controlplane`: the control plane on this machine, and its operator's commands.

    python -m controlplane serve --port 8000     # signup at localhost:8000, organisations at {slug}.localhost:8000
    python -m controlplane tick                  # trial reminders, read-only at trial end, day-30 deletions
    python -m controlplane backup                # one backup of every live organisation's store, old ones pruned
    python -m controlplane cancel SLUG | reactivate SLUG | change-plan SLUG PLAN
    python -m controlplane list

Settings are `BILLY_CONTROLPLANE_*` variables (controlplane/config.py), what the local instances
are told included (`BILLY_CONTROLPLANE_INSTANCE_*`, as `make run-controlplane` sets them).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime

from controlplane.billing import BillyStripe
from controlplane.chores import backup_all, run_chores
from controlplane.config import ControlPlaneSettings, get_settings
from controlplane.lifecycle import ControlPlane
from controlplane.local import InstanceSettings, LocalProvisioner
from controlplane.mail import smtp_mailer
from controlplane.store import OrgState, Store
from services.errors import BillyError

log = logging.getLogger("billy.controlplane")


def _now() -> datetime:
    return datetime.now(UTC)


def instance_settings(settings: ControlPlaneSettings) -> InstanceSettings:
    """What every local instance is told: the customers' Stripe (the sandbox locally) and mail."""
    return InstanceSettings(
        stripe_api_base=settings.instance_stripe_api_base,
        sandbox=settings.instance_sandbox,
        sandbox_demo_key=settings.instance_sandbox_demo_key,
        smtp_host=settings.instance_smtp_host,
        smtp_port=settings.instance_smtp_port,
        web_workdir=settings.instance_web_workdir,
    )


def build(settings: ControlPlaneSettings, proxy_port: int, web_port: int | None = None) -> ControlPlane:
    """The control plane over its store, Billy's Stripe account, the mail server and the local provisioner."""
    store = Store(settings.resolved_database_url)
    store.migrate()
    provisioner = LocalProvisioner(
        settings.root / "instances", proxy_port, instance_settings(settings), controlplane_port=web_port
    )
    billing = BillyStripe(settings)
    return ControlPlane(store, provisioner, provisioner, billing, smtp_mailer(settings), settings)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(port: int, web_port: int) -> None:
    """Caddy on `port` (organisations by host, the control plane on plain localhost), the web app on `web_port`."""
    import uvicorn

    from controlplane.web import create_app

    settings = get_settings()
    plane = build(settings, port, web_port)
    provisioner = plane.provisioner
    assert isinstance(provisioner, LocalProvisioner)
    provisioner.start_proxy()
    provisioner.reconcile()
    plane.billing.ensure_prices()
    # uvicorn re-raises the SIGTERM it caught once it has stopped; as an exception here it unwinds
    # through `finally`, so the instances and Caddy stop with the control plane instead of outliving it.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    stop = threading.Event()
    threading.Thread(target=run_chores, args=(plane, stop), name="controlplane-chores", daemon=True).start()
    print(f"› Agent Billy control plane: http://localhost:{port} (organisations at http://<name>.localhost:{port})")
    try:
        app = create_app(plane, address_suffix=f"localhost:{port}", public_url=f"http://localhost:{port}")
        uvicorn.run(app, host="127.0.0.1", port=web_port, log_level="warning")
    finally:
        stop.set()
        provisioner.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="the address's port")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="Caddy, the signup site and the chores")
    serve_cmd.add_argument("--web-port", type=int, default=0, help="the web app's own port (0: port + 1)")
    commands.add_parser("tick", help="trial reminders, read-only at trial end, deletions due")
    commands.add_parser("backup", help="back up every live organisation now")
    commands.add_parser("list", help="every organisation and its state")
    for name in ("cancel", "reactivate"):
        commands.add_parser(name).add_argument("slug")
    change = commands.add_parser("change-plan")
    change.add_argument("slug")
    change.add_argument("plan")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        serve(args.port, args.web_port or args.port + 1)
        return 0
    plane = build(get_settings(), args.port)
    now = _now()
    try:
        if args.command == "tick":
            print(plane.tick(now))
        elif args.command == "backup":
            print("backed up:", ", ".join(backup_all(plane, now)) or "nothing live")
        elif args.command == "list":
            for org in plane.store.orgs_in(*OrgState):
                print(f"{org.slug:30} {org.state:20} {org.plan:10} trial ends {org.trial_ends_at:%Y-%m-%d}")
        elif args.command == "cancel":
            plane.cancel(args.slug, now)
        elif args.command == "reactivate":
            plane.reactivate(args.slug, now)
        elif args.command == "change-plan":
            plane.change_plan(args.slug, args.plan, now)
    except BillyError as exc:
        print(f"controlplane: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
