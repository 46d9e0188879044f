"""The customer page beyond charges (issue 12): lifetime spend per currency, payment methods with
the default first, subscriptions with plan and next invoice (a trialing one included), invoices
with days overdue, and Billy's own trail for this customer, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from services import audit, clock
from services.customer_overview import customer_overview
from services.db import session_scope
from services.errors import NotFound
from services.models import StripeCustomer, StripePaymentMethod, StripeProduct, StripeSubscription
from services.permissions import Actor
from tests.conftest import member_actor
from tests.test_reports import DAY, NOW, T, add, charge, customer, invoice, subscription


@pytest.fixture
def alice(any_store_owner: Actor) -> Actor:
    add(
        customer("cus_alice", "Alice Archer", "alice@example.com"),
        customer("cus_bob", "Bob Baker", "bob@shop.example"),
        StripeProduct(id="prod_pro", name="Pro", created=T - 500 * DAY),
        charge("ch_usd", 5000, T - 3 * DAY, customer_id="cus_alice", refunded=1000),
        charge("ch_usd2", 2500, T - 2 * DAY, customer_id="cus_alice"),
        charge("ch_eur", 3000, T - DAY, customer_id="cus_alice", currency="eur"),
        charge("ch_failed", 2000, T - DAY, customer_id="cus_alice", status="failed", reason="expired_card"),
        charge("ch_bob", 9900, T - DAY, customer_id="cus_bob"),
        StripePaymentMethod(
            id="pm_old",
            customer_id="cus_alice",
            card_brand="visa",
            card_last4="1111",
            exp_month=1,
            exp_year=2020,
            created=T - 300 * DAY,
        ),
        StripePaymentMethod(
            id="pm_default",
            customer_id="cus_alice",
            card_brand="mastercard",
            card_last4="4444",
            exp_month=8,
            exp_year=2029,
            created=T - 200 * DAY,
        ),
        invoice("in_overdue", "open", 45000, due=T - 5 * DAY - 3600),
        invoice("in_paid", "paid", 4900, due=T - 40 * DAY, remaining=0),
        invoice("in_notyet", "open", 4900, due=T + 3 * DAY),
    )
    with session_scope() as s:
        row = s.get(StripeCustomer, "cus_alice")
        assert row is not None
        row.raw = {"invoice_settings": {"default_payment_method": "pm_default"}}
    subscription("sub_trial", "trialing", [(4900, "month", 1)], created=T - 3 * DAY)
    subscription("sub_ending", "active", [(1900, "month", 2)], created=T - 90 * DAY)
    with session_scope() as s:
        trial = s.get(StripeSubscription, "sub_trial")
        ending = s.get(StripeSubscription, "sub_ending")
        assert trial is not None and ending is not None
        trial.current_period_end, trial.raw = T + 11 * DAY, {**trial.raw, "trial_end": T + 11 * DAY}
        ending.current_period_end, ending.cancel_at_period_end = T + 20 * DAY, True
    return any_store_owner


def test_a_read_only_member_sees_the_whole_customer(alice: Actor) -> None:
    viewer = member_actor("read_only", "viewer@example.com")
    with clock.freeze(NOW):
        view = customer_overview(viewer, "cus_alice")
    assert [(s.currency, s.paid, s.refunded, s.net, s.charges) for s in view.lifetime] == [
        ("eur", 3000, 0, 3000, 1),
        ("usd", 7500, 1000, 6500, 2),
    ]
    assert [(p.id, p.label, p.expires, p.is_default, p.expired) for p in view.payment_methods] == [
        ("pm_default", "Mastercard •••• 4444", "08/2029", True, False),
        ("pm_old", "Visa •••• 1111", "01/2020", False, True),
    ]
    by_id = {s.id: s for s in view.subscriptions}
    assert by_id["sub_trial"].status == "trialing" and by_id["sub_trial"].trial_end == T + 11 * DAY
    assert by_id["sub_trial"].next_invoice == T + 11 * DAY and by_id["sub_trial"].ends_at is None
    assert by_id["sub_trial"].plan == "Pro · $49.00 / month"
    assert by_id["sub_ending"].next_invoice is None and by_id["sub_ending"].ends_at == T + 20 * DAY
    assert by_id["sub_ending"].plan == "Pro · $19.00 / month × 2"
    overdue = {i.id: i.days_overdue for i in view.invoices}
    assert overdue == {"in_overdue": 5, "in_paid": None, "in_notyet": None}
    assert next(i for i in view.invoices if i.id == "in_overdue").amount_remaining == 45000


def test_the_trail_holds_what_billy_did_to_this_customer_and_their_charges(alice: Actor) -> None:
    audit.record(
        alice, "charges.refund", "ok", audit.AuditDraft(targets=["ch_usd", "re_1"], amount=1000, currency="usd")
    )
    audit.record(alice, "customers.update_contact", "ok", audit.AuditDraft(targets=["cus_alice"]))
    audit.record(alice, "charges.refund", "ok", audit.AuditDraft(targets=["ch_bob"], amount=500, currency="usd"))
    view = customer_overview(alice, "cus_alice")
    assert [e.sentence for e in view.trail] == [
        "owner@example.com changed the customer's email or address",
        "owner@example.com refunded $10.00",
    ]


def test_an_unknown_customer_is_not_found(any_store_owner: Actor) -> None:
    with pytest.raises(NotFound):
        customer_overview(any_store_owner, "cus_nobody")
