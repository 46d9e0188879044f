"""Spend alerts (issue 15): each velocity rule fires on its own scenario, stays quiet on a normal
day, reaches the Owner by mail (caught by a real SMTP server) and survives a crash.

Real store (SQLite and PostgreSQL), real Stripe peer; time moved with the injectable clock.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from sandbox.seed import reset_to_demo
from services import agent_tokens, audit, audit_viewer, billing, clock, spend_alerts, stripe_keys
from services.agent_tokens import ScopeRequest
from services.audit_viewer import AuditFilters
from services.db import session_scope
from services.errors import PermissionDenied, ValidationFailed
from services.models import AuditEntry, SpendAlert
from services.permissions import Actor, Source
from tests.conftest import member_actor
from tests.stripe_helpers import make_charge, make_customer, sync_lists

CLERK_EMAIL = "clerk@example.com"
TUESDAY_10AM = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # within working hours


def key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def not_watching(any_store, any_store_owner, stripe_peer, smtp_catcher) -> object:  # type: ignore[no-untyped-def]
    """A connected instance whose alerts are not looking at recorded rows: as if it died right
    after each row was written."""
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    return smtp_catcher


@pytest.fixture
def alerting(not_watching) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """The instance as the app runs it: the alerts look at every recorded row."""
    stop = audit.on_record(spend_alerts.after_record)
    try:
        yield not_watching
    finally:
        stop()


def _charges(peer, count: int, amount: int = 20_00, customer: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    customer = customer or make_customer(peer)
    made = [make_charge(peer, amount, customer=customer)["id"] for _ in range(count)]
    sync_lists()
    return made


def _only(owner: Actor, *kinds: str, **thresholds: int) -> None:
    """Leave only these rules on (the Owner tunes them), so a scenario tests its own rules."""
    for kind, default in spend_alerts.DEFAULT_RULES.items():
        spend_alerts.set_rule(owner, kind, thresholds.get(kind, default), enabled=kind in kinds)


def _alerts() -> list[SpendAlert]:
    with session_scope() as session:
        return list(session.exec(select(SpendAlert).order_by(SpendAlert.id)))


def _refund_at(actor: Actor, charge_id: str, at: datetime, amount: int | None = None) -> None:
    with clock.freeze(at):
        billing.issue_refund(actor, charge_id, amount, None, key())


def test_more_refunds_in_an_hour_than_the_rule_allows_alerts_the_owner_by_mail(
    alerting, stripe_peer, any_store_owner
) -> None:  # type: ignore[no-untyped-def]
    _only(any_store_owner, "refunds_per_hour", refunds_per_hour=3)
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    charges = _charges(stripe_peer, 5)
    for n, charge_id in enumerate(charges[:3]):
        _refund_at(clerk, charge_id, TUESDAY_10AM + timedelta(minutes=n))
    assert _alerts() == []  # three is what the rule allows
    _refund_at(clerk, charges[3], TUESDAY_10AM + timedelta(minutes=3))
    _refund_at(clerk, charges[4], TUESDAY_10AM + timedelta(minutes=4))  # the same hour: no second alert
    (alert,) = _alerts()
    assert alert.kind == "refunds_per_hour" and alert.member_email == CLERK_EMAIL
    assert alert.summary == "clerk@example.com made 4 refunds within an hour (the rule allows 3)."
    assert len(alert.audit_ids) == 4 and alert.emailed_at is not None
    (mail,) = [m for m in alerting.messages() if "spend alert" in m.subject]
    assert mail.to == "owner@example.com" and alert.summary in mail.text
    assert f"/settings/spend?alert={alert.id}" in mail.text  # the Freeze, beside this alert
    rows_link = "/settings/audit?ids=" + ",".join(str(i) for i in alert.audit_ids)
    assert rows_link in mail.text
    shown = audit_viewer.search(
        any_store_owner, AuditFilters(ids=tuple(alert.audit_ids))
    ).entries  # what that link shows
    assert sorted(e.id for e in shown) == sorted(alert.audit_ids) and {e.action for e in shown} == {"charges.refund"}
    with session_scope() as session:
        recorded = session.exec(select(AuditEntry).where(AuditEntry.action == "spend.alert")).one()
    assert recorded.details["rule"] == "refunds_per_hour" and recorded.target_ids == [str(i) for i in alert.audit_ids]


def test_the_amount_in_an_hour_and_an_unusual_rate_alert(alerting, stripe_peer, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    _only(any_store_owner, "amount_per_hour", "unusual_rate")
    charges = _charges(stripe_peer, 7, amount=400_00)
    for n, charge_id in enumerate(charges[:6]):  # the Owner: no cap, no budget
        _refund_at(any_store_owner, charge_id, TUESDAY_10AM + timedelta(minutes=n))
    kinds = [a.kind for a in _alerts()]
    # $2,400 > $2,000 after the sixth; six refunds in an hour against a usual ~0 (floor 5).
    assert kinds == ["amount_per_hour", "unusual_rate"], kinds


def test_an_agent_token_is_counted_on_its_own_and_named(alerting, stripe_peer, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """Rows through a token are that token's, so a looping agent is caught and named, and the
    member's own dashboard refunds do not add to it."""
    _only(any_store_owner, "refunds_per_hour", refunds_per_hour=3)
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    agent = agent_tokens.actor_for_token(agent_tokens.issue_token(clerk, "Claude", ScopeRequest()).secret, Source.AGENT)
    charges = _charges(stripe_peer, 7, amount=10_00)
    for n, charge_id in enumerate(charges[:3]):
        _refund_at(clerk, charge_id, TUESDAY_10AM + timedelta(minutes=n))
    for n, charge_id in enumerate(charges[3:6]):
        _refund_at(agent, charge_id, TUESDAY_10AM + timedelta(minutes=10 + n))
    assert _alerts() == []  # three each: within the rule, though six in all
    _refund_at(agent, charges[6], TUESDAY_10AM + timedelta(minutes=20))
    (alert,) = _alerts()
    assert alert.summary == f"{CLERK_EMAIL}'s agent {agent.token_id} made 4 refunds within an hour (the rule allows 3)."


def test_an_unusual_rate_is_measured_against_the_persons_own_last_14_days(  # type: ignore[no-untyped-def]
    alerting, stripe_peer, any_store_owner
) -> None:
    """Someone who refunds all day is not unusual at six an hour; the bar is their own mean."""
    _only(any_store_owner, "unusual_rate", unusual_rate=12)
    busy = member_actor("billing_manager", "busy@example.com")
    for hour in range(0, 14 * 24, 2):  # one refund every two hours for 14 days: a mean of 0.5 an hour
        with clock.freeze(TUESDAY_10AM - timedelta(days=14) + timedelta(hours=hour, minutes=30)):
            audit.record(busy, "charges.refund", "ok", audit.AuditDraft(amount=1_00, currency="usd"))
    charges = _charges(stripe_peer, 7, amount=10_00)
    for n, charge_id in enumerate(charges[:6]):
        _refund_at(busy, charge_id, TUESDAY_10AM + timedelta(minutes=n))
    assert _alerts() == []  # six in the hour: not above 12 × 0.5
    _refund_at(busy, charges[6], TUESDAY_10AM + timedelta(minutes=6))
    (alert,) = _alerts()
    assert alert.kind == "unusual_rate" and "against a usual 0.5" in alert.summary, alert.summary


def test_refunds_to_one_customer_repeated_alert_once_that_day(alerting, stripe_peer, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    _only(any_store_owner, "same_customer")
    customer = make_customer(stripe_peer)
    charges = _charges(stripe_peer, 4, customer=customer)
    for n, charge_id in enumerate(charges):
        _refund_at(any_store_owner, charge_id, TUESDAY_10AM + timedelta(hours=n))
    (alert,) = _alerts()
    assert alert.kind == "same_customer" and alert.customer_id == customer
    assert alert.summary.startswith(f"Customer {customer} was refunded 3 times within 24 hours")


def test_a_refund_outside_working_hours_alerts_in_the_organisations_zone(
    alerting, stripe_peer, any_store_owner
) -> None:  # type: ignore[no-untyped-def]
    _only(any_store_owner, "outside_hours")
    assert spend_alerts.time_zone(any_store_owner) == "UTC"  # until the Owner sets one
    assert spend_alerts.set_time_zone(any_store_owner, "America/New_York") == "America/New_York"
    assert spend_alerts.time_zone(any_store_owner) == "America/New_York"
    charges = _charges(stripe_peer, 2)
    _refund_at(any_store_owner, charges[0], TUESDAY_10AM + timedelta(hours=5))  # 10:00 in New York
    assert _alerts() == []
    _refund_at(any_store_owner, charges[1], TUESDAY_10AM)  # 05:00 in New York
    (alert,) = _alerts()
    assert "at Tuesday 05:00 (EST), outside working hours" in alert.summary


def test_only_the_owner_sets_the_zone_and_only_to_a_real_one(alerting, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    manager = member_actor("billing_manager", "manager@example.com")
    with pytest.raises(PermissionDenied):
        spend_alerts.set_time_zone(manager, "Asia/Tokyo")
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "", "x" * 100):
        with pytest.raises(ValidationFailed, match="Choose a time zone from the list"):
            spend_alerts.set_time_zone(any_store_owner, bad)
    assert spend_alerts.time_zone(any_store_owner) == "UTC"  # nothing half-set
    spend_alerts.set_time_zone(any_store_owner, "Asia/Tokyo")
    with session_scope() as session:
        managed = session.exec(select(AuditEntry).where(AuditEntry.action == "spend.manage")).all()
        changes = [row for row in managed if row.target_ids == ["time_zone"]]
    outcomes = [(row.actor_email, row.outcome) for row in changes]
    assert outcomes.count(("owner@example.com", "ok")) == 1 and ("manager@example.com", "denied") in outcomes
    (ok,) = [row for row in changes if row.outcome == "ok"]
    assert ok.details["before"] == "UTC" and ok.details["after"] == "Asia/Tokyo"


def test_repeated_refusals_alert(alerting, stripe_peer, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    _only(any_store_owner, "failed_attempts")
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    (big,) = _charges(stripe_peer, 1, amount=900_00)
    with clock.freeze(TUESDAY_10AM):
        for _ in range(3):
            with pytest.raises(PermissionDenied):  # over the Clerk's $100 cap
                billing.issue_refund(clerk, big, None, None, key())
    (alert,) = _alerts()
    assert alert.kind == "failed_attempts" and "was refused 3 times within an hour" in alert.summary


def test_a_crash_before_the_alert_still_alerts_after_restart_and_only_once(
    not_watching, stripe_peer, any_store_owner
) -> None:  # type: ignore[no-untyped-def]
    _only(any_store_owner, "refunds_per_hour", refunds_per_hour=1)
    clerk = member_actor("billing_clerk", CLERK_EMAIL)
    charges = _charges(stripe_peer, 2)
    # The refunds are made and recorded; the process dies before looking at them.
    _refund_at(clerk, charges[0], TUESDAY_10AM)
    _refund_at(clerk, charges[1], TUESDAY_10AM + timedelta(minutes=1))
    assert _alerts() == []
    spend_alerts.catch_up()  # the restarted instance's first catch-up
    spend_alerts.catch_up()
    (alert,) = _alerts()
    assert alert.emailed_at is not None
    assert len([m for m in not_watching.messages() if "spend alert" in m.subject]) == 1


def test_the_demo_datas_normal_activity_raises_no_alert(alerting, stripe_peer, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    reset_to_demo(stripe_peer.url, customers=50)
    sync_lists()
    spend_alerts.catch_up()
    assert _alerts() == []
