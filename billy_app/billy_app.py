"""The Reflex app: pages over the service layer, plus the HTTP routes beside them."""

from __future__ import annotations

import logging

import reflex as rx

from billy_app.api.routes import build_api
from billy_app.asset_cache import immutable_assets
from billy_app.error_handlers import backend_exception_handler, frontend_exception_handler
from billy_app.event_gate import EventGate
from billy_app.mcp.server import McpEndpoint
from billy_app.pages import (  # noqa: F401 - registers the pages
    agents,
    approvals,
    charge,
    charges,
    connect_agent,
    customers,
    dashboard,
    entry,
    failed_payments,
    invoices,
    onboarding,
    plan,
    products,
    roles,
    search,
    spend_controls,
    stripe_connection,
    subscriptions,
    sync_settings,
    team,
)
from billy_app.pages import audit as audit_page  # noqa: F401 - registers /settings/audit
from billy_app.state import list_warmup  # noqa: F401 - registers the state signed-in pages start
from billy_app.workers import survive_dead_workers
from services import (
    audit,
    leader,
    mailer,
    periodic,
    retention,
    spend_alerts,
    stripe_events,
    stripe_keys,
    sync,
    write_recovery,
)
from services.config import get_settings
from services.logging_setup import install_scrubber

install_scrubber(get_settings().log_level)
log = logging.getLogger("billy")


def catch_up_on_start() -> None:
    """When a worker starts: a `BILLY_SMTP_PASSWORD` still in the environment moves into the secret
    store, this worker's refunds and refusals are watched for spend alerts, and the worker joins
    the election for the store's chores (one worker of several runs them)."""
    mailer.seed_smtp_password_on_start()
    spend_alerts.start_watching()
    chores_leadership.start()


def start_store_chores() -> None:
    """The elected worker brings the store up to date with Stripe (a restart may have missed
    changes), then keeps it current by reading Stripe's events (webhooks, once set up, are
    faster), and runs the periodic chores below."""
    settings = get_settings()
    if settings.sync_on_start and stripe_keys.connection() is not None:
        sync.background_sync.start()
    if settings.event_poll_seconds > 0:
        event_poller.start()
    for chore in periodic_chores:
        chore.start()


def stop_store_chores() -> None:
    """This worker no longer leads (its lock connection failed): another takes the chores over."""
    event_poller.stop()
    for chore in periodic_chores:
        chore.stop()


event_poller = stripe_events.EventPoller(get_settings().event_poll_seconds)
# Past 20 denied attempts a minute, a member's refusals are counted, not written one by one; the
# minute's summary row is appended by the next audit write, or by this at the latest.
audit_summaries = periodic.Every(60, audit.flush_denied_summaries, "audit-summaries")
# Spend alerts look at each refund and refusal as it is recorded (hooked in when the app starts,
# not when this module is imported); this catches up on anything a crash or a mail outage left.
alert_catch_up = periodic.Every(spend_alerts.CATCH_UP_SECONDS, spend_alerts.catch_up, "spend-alerts")
# Stripe writes a stopped process never recorded (killed between Stripe's answer and the store):
# settled from their idempotency keys and Stripe's events, first at start, then every two minutes.
write_reconciliation = periodic.Every(
    write_recovery.RECONCILE_SECONDS, write_recovery.reconcile_writes, "write-reconciliation", immediately=True
)
# The Stripe event log keeps BILLY_EVENT_LOG_RETENTION_DAYS, write keys a month; older rows go
# hourly, in small batches.
store_pruning = periodic.Every(3600, retention.prune_expired, "store-pruning", immediately=True)
periodic_chores = (audit_summaries, alert_catch_up, write_reconciliation, store_pruning)
chores_leadership = leader.Leadership(start_store_chores, stop_store_chores)


mcp_endpoint = McpEndpoint()  # the agent door at /mcp (issue 13)
app = rx.App(
    stylesheets=["/billy.css"],  # assets/billy.css: contrast fixes, .sr-only
    head_components=[rx.script(src="/billy.js")],  # assets/billy.js: tables reachable by keyboard; pages preloaded
    api_transformer=[build_api(), mcp_endpoint.transformer, immutable_assets],
    frontend_exception_handler=frontend_exception_handler,
    backend_exception_handler=backend_exception_handler,
)
# Before Reflex's own hydrate middleware: the session binding must hold before any state is sent.
app.add_middleware(EventGate(), index=0)
app.register_lifespan_task(catch_up_on_start)
app.register_lifespan_task(mcp_endpoint.lifespan)
# Several workers on Redis: a tab whose worker died keeps its state on the next (issue 16).
app.register_lifespan_task(survive_dead_workers)
