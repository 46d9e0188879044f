"""Every refusal leaves a `denied` audit row, whatever the door: reads included (reading is
not logged, a refused read is). Run on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from services import audit_viewer, billing, refund_requests, reports, roles, sync, team
from services.db import session_scope
from services.errors import PermissionDenied
from services.models import AuditEntry
from services.permissions import Actor, Source
from tests.conftest import member_actor

# (what is refused, the audited action, the call)
READS: list[tuple[str, str, Callable[[Actor], Any]]] = [
    ("team list", "team.view", team.list_team),
    ("roles", "roles.view", roles.list_roles),
    ("audit search", "audit.view", audit_viewer.search),
    ("customer search", "customers.search", billing.search_customers),
    ("customer page", "customers.view", lambda a: billing.get_customer(a, "cus_x")),
    ("charge", "charges.view", lambda a: billing.get_charge(a, "ch_x")),
    ("dashboard", "dashboard.view", reports.dashboard),
    ("revenue comparison", "dashboard.view", lambda a: reports.revenue_comparison(a, "7d")),
    ("charges list", "charges.search", lambda a: reports.search_charges(a)),
    ("subscriptions list", "subscriptions.search", lambda a: reports.search_subscriptions(a)),
    ("invoices list", "invoices.search", lambda a: reports.search_invoices(a)),
    ("sync progress", "sync.view", sync.progress),
    ("refund queue", "refunds.queue", lambda a: refund_requests.list_queue(a)),
]


@pytest.mark.parametrize(("what", "action", "call"), READS, ids=[r[0] for r in READS])
def test_a_refused_read_is_audited_as_denied(any_store, what: str, action: str, call) -> None:  # type: ignore[no-untyped-def]
    # A role this instance does not know (a removed custom role, a forged claim) may read nothing;
    # team, roles and audit are refused to a Billing Manager too.
    stranger = Actor(99, "stranger@example.com", "custom:404", Source.API, "10.0.0.9", "curl")
    manager = member_actor("billing_manager", "manager@example.com")
    callers = [stranger] + ([manager] if action in {"team.view", "roles.view", "audit.view"} else [])
    for caller in callers:
        with pytest.raises(PermissionDenied):
            call(caller)
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action == action)).all()
    assert [(r.actor_email, r.outcome) for r in rows] == [(c.email, "denied") for c in callers], what
    assert rows[0].source == "api" and rows[0].client_address == "10.0.0.9" and rows[0].error


def test_starting_a_sync_is_audited_whoever_asks(any_store, any_store_owner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sync.background_sync, "start", lambda gateway=None: True)
    clerk = member_actor("billing_clerk", "clerk@example.com")
    with pytest.raises(PermissionDenied):
        sync.start_sync(clerk)
    assert sync.start_sync(any_store_owner) is True
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action == "sync.run")).all()
    assert [(r.actor_email, r.outcome) for r in rows] == [("clerk@example.com", "denied"), ("owner@example.com", "ok")]
