"""The dashboard's numbers and the charges, subscriptions and invoices lists, on SQLite and
PostgreSQL, from rows put straight into the store (reports never call Stripe).

Times are fixed: `NOW` is Wednesday 18 March 2026, 12:00 UTC."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services import clock, mirror, reports
from services.db import session_scope
from services.errors import PermissionDenied, ValidationFailed
from services.models import (
    StripeCharge,
    StripeCustomer,
    StripeInvoice,
    StripeProduct,
    StripeRefund,
    StripeSubscription,
    StripeSubscriptionItem,
)
from services.permissions import Actor, Source
from services.reports import ChargeFilters, InvoiceFilters, SubscriptionFilters
from tests.conftest import member_actor

NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
DAY = 86_400
MIDNIGHT = int(datetime(2026, 3, 18, tzinfo=UTC).timestamp())


# --- putting rows in the store -------------------------------------------------------------------


def add(*rows: Any) -> None:
    with session_scope() as session:
        session.add_all(rows)


def customer(cid: str, name: str, email: str, *, deleted: bool = False) -> StripeCustomer:
    return StripeCustomer(
        id=cid,
        name=name,
        email=email,
        name_lower=name.lower(),
        email_lower=email.lower(),
        created=T - 400 * DAY,
        deleted=deleted,
    )


def charge(
    cid: str,
    amount: int,
    created: int,
    *,
    customer_id: str | None = None,
    currency: str = "usd",
    status: str = "succeeded",
    reason: str | None = None,
    outcome_type: str | None = None,
    refunded: int = 0,
    deleted: bool = False,
) -> StripeCharge:
    return StripeCharge(
        id=cid,
        customer_id=customer_id,
        amount=amount,
        amount_refunded=refunded,
        currency=currency,
        status=status,
        paid=status == "succeeded",
        refunded=refunded >= amount,
        decline_reason=reason,
        outcome_type=outcome_type or ("issuer_declined" if status == "failed" else "authorized"),
        failure_message="Your card was declined." if status == "failed" else None,
        description=f"Charge {cid}",
        created=created,
        deleted=deleted,
    )


def refund(rid: str, charge_id: str, amount: int, created: int, *, currency: str = "usd", **extra: Any) -> StripeRefund:
    fields = {"status": "succeeded", **extra}
    return StripeRefund(id=rid, charge_id=charge_id, amount=amount, currency=currency, created=created, **fields)


def invoice(
    iid: str,
    status: str,
    total: int,
    *,
    due: int | None = None,
    remaining: int | None = None,
    currency: str = "usd",
    customer_id: str | None = "cus_alice",
    created: int = T - 20 * DAY,
    deleted: bool = False,
) -> StripeInvoice:
    return StripeInvoice(
        id=iid,
        number=f"INV-{iid[3:]}",
        customer_id=customer_id,
        status=status,
        currency=currency,
        total=total,
        amount_due=total,
        amount_remaining=total if remaining is None else remaining,
        due_date=due,
        created=created,
        deleted=deleted,
    )


MONTHS = {"month": 1, "year": 12}


def subscription_obj(
    sid: str, status: str, items: list[tuple[int, str, int]], currency: str, customer_id: str, created: int
) -> dict[str, Any]:
    """A subscription as Stripe sends it: items are (unit amount, interval, quantity)."""
    return {
        "id": sid,
        "object": "subscription",
        "customer": customer_id,
        "status": status,
        "currency": currency,
        "created": created,
        "items": {
            "data": [
                {
                    "id": f"si_{sid}_{n}",
                    "quantity": qty,
                    "price": {
                        "id": f"price_{interval}_{unit}",
                        "product": "prod_pro",
                        "currency": currency,
                        "unit_amount": unit,
                        "recurring": {"interval": interval, "interval_count": 1},
                    },
                }
                for n, (unit, interval, qty) in enumerate(items)
            ]
        },
    }


def subscription(
    sid: str,
    status: str,
    items: list[tuple[int, str, int]],
    *,
    currency: str = "usd",
    customer_id: str = "cus_alice",
    created: int = T - 60 * DAY,
    deleted: bool = False,
) -> None:
    """A subscription row with its items and the MRR the sync stores for it (the monthly
    amount: a yearly price brings in a twelfth, times the quantity)."""
    obj = subscription_obj(sid, status, items, currency, customer_id, created)
    mrr = round(sum(unit * qty / MONTHS[interval] for unit, interval, qty in items))
    add(
        StripeSubscription(
            id=sid,
            customer_id=customer_id,
            status=status,
            currency=currency,
            mrr=mrr,
            created=created,
            deleted=deleted,
            raw=obj,
        ),
        *[
            StripeSubscriptionItem(
                id=item["id"],
                subscription_id=sid,
                price_id=item["price"]["id"],
                product_id="prod_pro",
                quantity=item["quantity"],
                unit_amount=item["price"]["unit_amount"],
                currency=currency,
                recurring_interval=item["price"]["recurring"]["interval"],
                recurring_interval_count=1,
                raw=item,
            )
            for item in obj["items"]["data"]
        ],
    )


@pytest.fixture
def people(any_store_owner: Actor) -> Actor:
    add(
        customer("cus_alice", "Alice Archer", "alice@example.com"),
        customer("cus_bob", "Bob Baker", "bob@shop.example"),
        customer("cus_carol", "Carol Cruz", "carol@example.com"),
        customer("cus_dan", "Dan Diaz", "dan@example.com"),
        customer("cus_gone", "", "", deleted=True),
        StripeProduct(id="prod_pro", name="Pro", created=T - 500 * DAY),
    )
    return any_store_owner


# --- the dashboard -----------------------------------------------------------------------------------


def test_mrr_counts_active_and_past_due_with_yearly_and_quantities_per_currency(people: Actor) -> None:
    subscription("sub_monthly", "active", [(2000, "month", 3)])  # $60/month
    subscription("sub_yearly", "active", [(120000, "year", 1)])  # $1,200/year = $100/month
    subscription("sub_mixed", "past_due", [(1000, "month", 2), (24000, "year", 1)])  # $20 + $20
    subscription("sub_trial", "trialing", [(9900, "month", 1)])
    subscription("sub_canceled", "canceled", [(9900, "month", 1)])
    subscription("sub_unpaid", "unpaid", [(9900, "month", 1)])
    subscription("sub_deleted", "active", [(9900, "month", 1)], deleted=True)
    subscription("sub_eur", "active", [(3000, "month", 1)], currency="eur")

    with clock.freeze(NOW):
        mrr = reports.dashboard(people).mrr

    assert [(m.currency, m.text, m.subscriptions, m.past_due, m.past_due_text) for m in mrr] == [
        ("usd", "$200.00", 3, 1, "$40.00"),
        ("eur", "€30.00", 1, 0, "€0.00"),
    ]


def test_mrr_from_subscriptions_stored_by_the_sync(people: Actor) -> None:
    with session_scope() as session:
        for sid, status, items in (
            ("sub_monthly", "active", [(2000, "month", 3)]),
            ("sub_yearly", "active", [(120000, "year", 1)]),
            ("sub_mixed", "past_due", [(1000, "month", 2), (24000, "year", 1)]),
            ("sub_trial", "trialing", [(9900, "month", 1)]),
        ):
            mirror.write_objects(session, "subscription", [subscription_obj(sid, status, items, "usd", "cus_a", T)], T)
    with clock.freeze(NOW):
        mrr = reports.dashboard(people).mrr
    assert [(m.text, m.subscriptions, m.past_due_text) for m in mrr] == [("$200.00", 3, "$40.00")]


def test_revenue_per_day_over_30_days_nets_refunds_and_keeps_currencies_apart(people: Actor) -> None:
    add(
        charge("ch_today_1", 10000, MIDNIGHT + 3600),
        charge("ch_today_2", 5000, T - 60, refunded=5000),
        charge("ch_failed", 99900, T - 60, status="failed", reason="generic_decline"),
        charge("ch_pending", 7700, T - 60, status="pending"),
        charge("ch_deleted", 30000, T - 60, deleted=True),
        charge("ch_first_day", 700, MIDNIGHT - 29 * DAY),  # the window's first second
        charge("ch_too_old", 50000, MIDNIGHT - 29 * DAY - 1),
        charge("ch_eur", 4000, MIDNIGHT - 3 * DAY + 10, currency="eur"),
        refund("re_today", "ch_today_1", 3000, T - 30),
        refund("re_two_days", "ch_today_2", 500, MIDNIGHT - 2 * DAY + 5),
        refund("re_failed", "ch_today_2", 2000, T - 30, status="failed"),
        refund("re_old", "ch_too_old", 50000, MIDNIGHT - 40 * DAY),
        refund("re_deleted", "ch_today_2", 100, T - 30, deleted=True),
    )

    with clock.freeze(NOW):
        board = reports.dashboard(people)

    assert [s.currency for s in board.revenue] == ["usd", "eur"]
    usd, eur = board.revenue
    assert len(usd.days) == 30 and usd.days[0].day == date(2026, 2, 17) and usd.days[-1].day == date(2026, 3, 18)
    assert board.revenue_since == date(2026, 2, 17)
    today, two_days_ago, first = usd.days[-1], usd.days[-3], usd.days[0]
    assert (today.gross, today.refunded, today.net, today.net_text) == (15000, 3000, 12000, "$120.00")
    assert (two_days_ago.gross, two_days_ago.net_text) == (0, "-$5.00")
    assert (first.gross, first.net_text) == (700, "$7.00")
    assert (usd.gross.text, usd.refunded.text, usd.net.text) == ("$157.00", "$35.00", "$122.00")
    assert [d.net_text for d in eur.days if d.net] == ["€40.00"] and eur.days[-4].net == 4000
    assert eur.net.text == "€40.00"


@pytest.mark.parametrize("period, days", [("7d", 7), ("30d", 30), ("90d", 90)])
def test_a_revenue_period_is_compared_with_the_same_number_of_days_before_it(
    people: Actor, period: str, days: int
) -> None:
    first = MIDNIGHT - (days - 1) * DAY  # the period's first second: today is its last day
    add(
        charge("ch_first_second", 1000, first),
        charge("ch_today", 200, T - 60),
        charge("ch_last_before", 500, first - 1),  # the period before's last second
        charge("ch_first_before", 300, first - days * DAY),  # and its first
        charge("ch_too_old", 9999, first - days * DAY - 1),
    )

    with clock.freeze(NOW):
        comparison = reports.revenue_comparison(people, period)

    chosen = comparison.period
    assert (chosen.first, chosen.last) == (NOW.date() - timedelta(days=days - 1), NOW.date())
    assert (chosen.previous_first, chosen.previous_last) == (
        NOW.date() - timedelta(days=2 * days - 1),
        NOW.date() - timedelta(days=days),
    )
    (usd,) = comparison.series
    assert len(usd.current.days) == len(usd.previous.days) == days
    assert (usd.current.net.text, usd.previous.net.text) == ("$12.00", "$8.00")
    assert usd.change == 50.0 and usd.change_text == f"+50.0% vs previous {days} days"


def test_revenue_changes_per_currency_say_when_there_is_nothing_to_compare_with(people: Actor) -> None:
    add(
        charge("ch_usd_now", 10000, MIDNIGHT + 60),
        charge("ch_usd_now_2", 2400, MIDNIGHT - 6 * DAY),
        refund("re_usd_now", "ch_usd_now", 400, T - 30),
        charge("ch_usd_before", 15000, MIDNIGHT - 10 * DAY),
        charge("ch_gbp_now", 300, T - 60, currency="gbp"),  # nothing the week before
        charge("ch_eur_before", 5000, MIDNIGHT - 10 * DAY, currency="eur"),  # nothing this week
        charge("ch_jpy_now", 500, T - 60, currency="jpy"),
        charge("ch_jpy_before", 400, MIDNIGHT - 8 * DAY, currency="jpy"),
        refund("re_jpy_before", "ch_jpy_before", 400, MIDNIGHT - 8 * DAY, currency="jpy"),  # netted nothing
    )

    with clock.freeze(NOW):
        comparison = reports.revenue_comparison(people, "7d")

    assert [(s.currency, s.current.net.text, s.previous.net.text, s.change_text) for s in comparison.series] == [
        ("usd", "$120.00", "$150.00", "-20.0% vs previous 7 days"),
        ("jpy", "¥500", "¥0", reports.NO_PREVIOUS_DATA),
        ("gbp", "£3.00", "£0.00", reports.NO_PREVIOUS_DATA),
        ("eur", "€0.00", "€50.00", "-100.0% vs previous 7 days"),
    ]
    assert [s.change for s in comparison.series][1:3] == [None, None]


def test_month_to_date_is_compared_with_the_same_days_of_last_month(people: Actor) -> None:
    feb_1, mar_1 = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    add(
        charge("ch_mar_1", 1000, int(mar_1.timestamp())),
        charge("ch_today", 500, T - 60),
        charge("ch_feb_1", 100, int(feb_1.timestamp())),
        charge("ch_feb_18", 400, int(datetime(2026, 2, 19, tzinfo=UTC).timestamp()) - 1),
        charge("ch_feb_19", 9900, int(datetime(2026, 2, 19, tzinfo=UTC).timestamp())),  # past the 18th
        charge("ch_jan_31", 7700, int(feb_1.timestamp()) - 1),
    )

    with clock.freeze(NOW):  # 18 March: 1-18 March against 1-18 February
        comparison = reports.revenue_comparison(people, "mtd")
    chosen, (usd,) = comparison.period, comparison.series
    assert (chosen.label, chosen.first, chosen.previous_first, chosen.previous_last) == (
        "Month to date",
        date(2026, 3, 1),
        date(2026, 2, 1),
        date(2026, 2, 18),
    )
    assert (usd.current.net.text, usd.previous.net.text) == ("$15.00", "$5.00")
    assert usd.change_text == "+200.0% vs same days last month (1–18 February)"

    with clock.freeze(datetime(2026, 3, 31, 9, 0, tzinfo=UTC)):  # February has no 29th to 31st
        (usd,) = reports.revenue_comparison(people, "mtd").series
    assert (len(usd.current.days), len(usd.previous.days), usd.previous.days[-1].day) == (31, 28, date(2026, 2, 28))
    assert usd.previous.net.text == "$104.00" and "(1–28 February)" in usd.change_text

    assert reports.revenue_period("mtd", datetime(2026, 3, 1, tzinfo=UTC)).previous_label == (
        "same days last month (1 February)"
    )
    january = reports.revenue_period("mtd", datetime(2026, 1, 10, 23, 59, tzinfo=UTC))
    assert (january.previous_first, january.previous_last) == (date(2025, 12, 1), date(2025, 12, 10))


def test_a_revenue_period_not_offered_is_refused(people: Actor) -> None:
    for period in ("365d", "", "0d", "mtd "):
        with pytest.raises(ValidationFailed, match="Choose a period"):
            reports.revenue_comparison(people, period)


def test_failed_payments_this_week_grouped_by_reason_with_repeat_customers(people: Actor) -> None:
    add(
        charge("ch_f1", 1000, T - 1 * DAY, customer_id="cus_alice", status="failed", reason="expired_card"),
        charge("ch_f2", 1000, T - 2 * DAY, customer_id="cus_alice", status="failed", reason="expired_card"),
        charge("ch_f3", 2500, T - 3 * DAY, customer_id="cus_bob", status="failed", reason="insufficient_funds"),
        charge(
            "ch_f4",
            9900,
            T - 3 * DAY,
            customer_id="cus_bob",
            status="failed",
            reason="highest_risk_level",
            outcome_type="blocked",
        ),
        charge("ch_f5", 5000, T - 4 * DAY, customer_id="cus_carol", status="failed", reason="fraudulent"),
        charge("ch_f6", 700, T - 5 * DAY, status="failed", reason="elevated_risk_level", currency="eur"),
        charge("ch_f7", 1200, T - 6 * DAY, customer_id="cus_dan", status="failed", reason="generic_decline"),
        charge("ch_f8", 1300, T - 8 * DAY, customer_id="cus_dan", status="failed", reason="generic_decline"),  # older
        charge("ch_f9", 1400, T - DAY, customer_id="cus_dan", status="failed", reason="lost_card", deleted=True),
        charge("ch_ok", 1500, T - DAY, customer_id="cus_dan"),
    )

    with clock.freeze(NOW):
        board = reports.dashboard(people)

    groups = {g.reason: g for g in board.failed}
    assert [g.label for g in board.failed] == ["Expired card", "Insufficient funds", "Fraud block", "Other"]
    assert {r: g.count for r, g in groups.items()} == {
        "expired_card": 2,
        "insufficient_funds": 1,
        "fraud": 3,
        "other": 1,
    }
    assert board.failed_count == 7
    assert [m.text for m in groups["fraud"].totals] == ["$149.00", "€7.00"]
    assert [(f.customer.label, f.failures, f.repeat) for f in groups["expired_card"].customers] == [
        ("Alice Archer", 2, True)
    ]
    assert [(f.customer.label, f.repeat) for f in groups["fraud"].customers] == [
        ("Bob Baker", True),
        ("Carol Cruz", False),
    ]
    assert [(f.customer.label, f.repeat) for f in groups["other"].customers] == [("Dan Diaz", False)]
    assert [(f.customer.label, f.week_failures) for f in board.repeat_customers] == [
        ("Alice Archer", 2),
        ("Bob Baker", 2),
    ]


def test_open_invoices_and_overdue_ones_per_currency(people: Actor) -> None:
    add(
        invoice("in_overdue", "open", 5000, due=T - DAY),
        invoice("in_part_paid", "open", 8000, remaining=3000, due=T + DAY),
        invoice("in_auto", "open", 1000, due=None),  # charged automatically: never overdue
        invoice("in_eur_overdue", "open", 2000, due=T - 10, currency="eur"),
        invoice("in_paid", "paid", 7000, remaining=0, due=T - 5 * DAY),
        invoice("in_draft", "draft", 6000, due=T - 5 * DAY),
        invoice("in_deleted", "open", 9000, due=T - 5 * DAY, deleted=True),
    )

    with clock.freeze(NOW):
        totals = {t.currency: t for t in reports.dashboard(people).invoices}

    usd, eur = totals["usd"], totals["eur"]
    assert (usd.open_count, usd.open.text) == (3, "$90.00")
    assert (usd.overdue_count, usd.overdue.text) == (1, "$50.00")
    assert (usd.not_due_count, usd.not_due.text) == (2, "$40.00")
    assert (eur.open_count, eur.overdue_count, eur.overdue.text, eur.not_due.text) == (1, 1, "€20.00", "€0.00")
    # A day later the invoice due tomorrow is overdue too.
    with clock.freeze(NOW + timedelta(days=2)):
        later = {t.currency: t for t in reports.dashboard(people).invoices}
    assert (later["usd"].overdue_count, later["usd"].overdue.text) == (2, "$80.00")


def test_an_invoice_due_today_is_overdue_from_the_moment_it_was_due(people: Actor) -> None:
    """Whole days come from the rollup; today's invoices are compared with the moment itself."""
    midnight = T - T % DAY
    add(
        invoice("in_due_at_midnight", "open", 1000, due=midnight),
        invoice("in_due_tonight", "open", 2000, due=midnight + DAY - 1),
        invoice("in_due_yesterday", "open", 4000, due=midnight - 1),
    )

    def overdue(at: datetime) -> tuple[int, str]:
        reports.forget_dashboard()  # computed at `at` itself, not a copy kept from a second before
        with clock.freeze(at):
            usd = reports.dashboard(people).invoices[0]
        return usd.overdue_count, usd.overdue.text

    start = datetime.fromtimestamp(midnight, UTC)
    assert overdue(start) == (1, "$40.00")  # due at this very second: not yet overdue
    assert overdue(start + timedelta(seconds=1)) == (2, "$50.00")
    assert overdue(start + timedelta(seconds=DAY - 1)) == (2, "$50.00")
    assert overdue(start + timedelta(seconds=DAY)) == (3, "$70.00")


def test_recent_refunds_are_the_latest_ten_with_charge_and_customer(people: Actor) -> None:
    add(charge("ch_big", 100_000, T - 30 * DAY, customer_id="cus_carol"), charge("ch_anon", 5000, T - 30 * DAY))
    add(*[refund(f"re_{n:02}", "ch_big", 100 * (n + 1), T - 1000 + n) for n in range(12)])
    add(refund("re_anon", "ch_anon", 250, T - 5000), refund("re_hidden", "ch_big", 999, T, deleted=True))

    with clock.freeze(NOW):
        recent = reports.dashboard(people).recent_refunds

    assert [r.id for r in recent] == [f"re_{n:02}" for n in range(11, 1, -1)]
    top = recent[0]
    assert (top.charge_id, top.customer.id, top.customer.label, top.amount.text) == (
        "ch_big",
        "cus_carol",
        "Carol Cruz",
        "$12.00",
    )


def test_an_empty_store_gives_an_empty_dashboard(people: Actor) -> None:
    with clock.freeze(NOW):
        board = reports.dashboard(people)
    assert (board.mrr, board.revenue, board.invoices, board.recent_refunds, board.repeat_customers) == (
        [],
        [],
        [],
        [],
        [],
    )
    assert [g.count for g in board.failed] == [0, 0, 0, 0] and board.failed_count == 0


def test_the_dashboard_is_read_once_for_everyone_until_the_store_changes_or_15_seconds_pass(
    people: Actor,
) -> None:
    """Every open dashboard re-reads on each store change; one read serves them all. A failed
    payment stored without a notice (the kept read cannot know of it) shows up once a notice
    arrives, once the window has passed, or once the clock moves back."""
    from services import notices

    def failed_at(at: datetime) -> int:
        with clock.freeze(at):
            return reports.dashboard(people).failed_count

    def fail_quietly(cid: str) -> None:
        add(charge(cid, 1000, T - 60, status="failed", reason="generic_decline"))

    assert failed_at(NOW) == 0
    fail_quietly("ch_quiet_1")
    assert failed_at(NOW + timedelta(seconds=1)) == 0  # the kept read: no notice yet
    notices.publish("charge", ["ch_quiet_1"])
    assert failed_at(NOW + timedelta(seconds=1)) == 1  # the store changed: read anew
    fail_quietly("ch_quiet_2")
    window = reports.DASHBOARD_CACHE_SECONDS
    assert failed_at(NOW + timedelta(seconds=window)) == 1  # read at NOW + 1 s: still within the window
    assert failed_at(NOW + timedelta(seconds=window + 1)) == 2  # the window has passed
    fail_quietly("ch_quiet_3")
    assert failed_at(NOW) == 3  # a clock moved back gets a fresh read too


DECLINES = (  # (decline_reason, outcome_type): every dashboard reason, NULLs included
    ("expired_card", "issuer_declined"),
    ("insufficient_funds", "issuer_declined"),
    ("highest_risk_level", "blocked"),
    ("fraudulent", "issuer_declined"),
    ("rule", "blocked"),
    ("generic_decline", "blocked"),
    ("generic_decline", "issuer_declined"),
    ("lost_card", None),
    (None, None),
)


def failed_week_counted_one_by_one(at: datetime) -> list[Any]:
    """The week's failed payments as the dashboard defines them, counted from every charge
    row in Python: the reference the rollup-based computation must equal."""
    until = int(at.timestamp())
    since = until - reports.FAILED_WINDOW_DAYS * DAY
    with session_scope() as session:
        rows = session.execute(
            sa.text(
                "SELECT customer_id, decline_reason, outcome_type, currency, amount, created FROM stripe_charge "
                "WHERE status = 'failed' AND NOT deleted AND created BETWEEN :since AND :until"
            ),
            {"since": since, "until": until},
        ).all()
    counts: dict[str, int] = defaultdict(int)
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    week: dict[str, int] = defaultdict(int)
    last: dict[str, int] = defaultdict(int)
    for cid, code, outcome, cur, amount, created in rows:
        reason = reports.failure_reason(code, outcome)
        counts[reason] += 1
        totals[reason][cur] += amount
        if cid:
            per[reason][cid] += 1
            week[cid] += 1
            last[cid] = max(last[cid], created)

    def ranked(pairs: Any) -> list[tuple[str, int]]:
        return sorted(pairs, key=lambda p: (-week[p[0]], -p[1], -last[p[0]], p[0]))

    shown = reports.FAILED_CUSTOMERS_SHOWN
    groups = [
        (
            reason,
            counts[reason],
            sorted(((-v, c) for c, v in totals[reason].items())),
            [(cid, n, week[cid], week[cid] >= 2, last[cid]) for cid, n in ranked(per[reason].items())[:shown]],
            max(0, len(per[reason]) - shown),
        )
        for reason in reports.FAILURE_REASONS
    ]
    repeat = [(cid, n, n, True, last[cid]) for cid, n in ranked((c, n) for c, n in week.items() if n >= 2)]
    return [groups, sum(counts.values()), repeat]


def failed_week_on_the_dashboard(actor: Actor, at: datetime) -> list[Any]:
    reports.forget_dashboard()
    with clock.freeze(at):
        board = reports.dashboard(actor)

    def people(entries: list[reports.FailedCustomer]) -> list[Any]:
        return [(f.customer.id, f.failures, f.week_failures, f.repeat, f.last_failed) for f in entries]

    groups = [
        (g.reason, g.count, sorted((-m.amount, m.currency) for m in g.totals), people(g.customers), g.more_customers)
        for g in board.failed
    ]
    return [groups, board.failed_count, people(board.repeat_customers)]


def test_the_weeks_failed_payments_from_rollups_equal_every_failure_counted_one_by_one(people: Actor) -> None:
    """The dashboard reads the week's whole days from `rollup_failed_day`, its two part-days
    from the charges, and repeat customers from `rollup_failed_customer` (migration 0021).
    Failures exactly on the week's edges and on midnights, customers failing many times, for
    several reasons, or with no customer, and charges changed after they were stored (status,
    deletion, customer, time: what the triggers follow), must give what counting every
    failure one by one gives, at moments across a day."""
    rng = random.Random(20261206)
    pool = [f"cus_r{i:02d}" for i in range(70)]
    add(*(customer(cid, f"Person {cid}", f"{cid}@example.com") for cid in pool[::2]))
    edges = [T - 7 * DAY, T - 7 * DAY - 1, T, T + 1, MIDNIGHT, MIDNIGHT - 1, MIDNIGHT - 6 * DAY, MIDNIGHT - 7 * DAY]
    rows = []
    for i in range(700):
        created = rng.choice(edges) if rng.random() < 0.15 else T + rng.randint(-9 * DAY, DAY)
        heavy = rng.random() < 0.3  # a few customers fail again and again
        cid = None if rng.random() < 0.08 else rng.choice(pool[:6] if heavy else pool)
        code, outcome = rng.choice(DECLINES)
        status = "failed" if rng.random() < 0.85 else rng.choice(("succeeded", "pending"))
        rows.append(
            charge(
                f"ch_w{i}",
                rng.randint(100, 9_000),
                created,
                customer_id=cid,
                currency=rng.choice(("usd", "usd", "eur")),
                status=status,
                reason=code if status == "failed" else None,
                outcome_type=outcome,
                deleted=rng.random() < 0.03,
            )
        )
    add(*rows)
    with session_scope() as session:  # changed after they were stored, as Stripe's events do
        for i in rng.sample(range(700), 120):
            change, value = rng.choice(
                (
                    ("status", rng.choice(("failed", "succeeded"))),
                    ("deleted", rng.random() < 0.5),
                    ("customer_id", rng.choice([None, *pool[:6]])),
                    ("created", T + rng.randint(-8 * DAY, 0)),
                )
            )
            update = f"UPDATE stripe_charge SET {change} = :v WHERE id = :id"  # noqa: S608 - our own column names
            session.execute(sa.text(update), {"v": value, "id": f"ch_w{i}"})
        session.execute(sa.text("DELETE FROM stripe_charge WHERE id IN ('ch_w1', 'ch_w2', 'ch_w3')"))

    moments = [
        NOW,
        NOW + timedelta(hours=11, minutes=59, seconds=59),
        NOW + timedelta(hours=12),
        NOW - timedelta(hours=12),
    ]
    for at in moments:
        expected = failed_week_counted_one_by_one(at)
        assert failed_week_on_the_dashboard(people, at) == expected, at
    # The walk did exercise what it claims: repeat customers, a list longer than shown, no-customer failures.
    groups, _, repeat = failed_week_counted_one_by_one(NOW)
    assert len(repeat) >= 3 and any(more > 0 for *_, more in groups)


def test_a_reasons_list_fills_past_its_repeat_customers_newest_failures(people: Actor) -> None:
    """The newest failures of a reason may be a repeat customer's, already listed: the list goes
    on with as many customers who failed once as it has room for, newest first."""
    add(customer("cus_again", "Again Andersen", "again@example.com"))
    add(*(customer(f"cus_once{i:02d}", f"Once {i:02d}", f"once{i:02d}@example.com") for i in range(25)))
    add(
        *(
            charge(f"ch_again{i}", 900, T - i, customer_id="cus_again", status="failed", reason="expired_card")
            for i in range(3)
        ),
        *(
            charge(
                f"ch_once{i:02d}",
                500,
                T - 60 * (i + 1),
                customer_id=f"cus_once{i:02d}",
                status="failed",
                reason="expired_card",
            )
            for i in range(25)
        ),
    )
    reports.forget_dashboard()
    with clock.freeze(NOW):
        expired = next(g for g in reports.dashboard(people).failed if g.reason == "expired_card")
    shown = reports.FAILED_CUSTOMERS_SHOWN
    assert [f.customer.id for f in expired.customers] == ["cus_again"] + [f"cus_once{i:02d}" for i in range(shown - 1)]
    assert expired.more_customers == 26 - shown
    assert failed_week_on_the_dashboard(people, NOW) == failed_week_counted_one_by_one(NOW)


# --- the charges list ----------------------------------------------------------------------------------


@pytest.fixture
def some_charges(people: Actor) -> Actor:
    add(
        charge("ch_a", 4599, T - 1 * DAY, customer_id="cus_alice"),
        charge("ch_b", 12000, T - 2 * DAY, customer_id="cus_bob", refunded=2000),
        charge("ch_c", 800, T - 3 * DAY, customer_id="cus_bob", status="failed", reason="insufficient_funds"),
        charge("ch_d", 15000, T - 4 * DAY, customer_id="cus_carol", status="failed", reason="expired_card"),
        charge(
            "ch_e", 3000, T - 5 * DAY, customer_id="cus_carol", status="failed", reason="rule", outcome_type="blocked"
        ),
        charge("ch_f", 2500, T - 6 * DAY, customer_id="cus_dan", status="failed", reason="card_declined"),
        charge("ch_g", 1000, T - 7 * DAY, customer_id="cus_dan", status="pending"),
        charge("ch_h", 2000, T - 8 * DAY, customer_id="cus_alice", currency="eur"),
        charge("ch_x", 5555, T - 1 * DAY, customer_id="cus_alice", deleted=True),
    )
    return people


def ids(page: reports.Page[Any]) -> list[str]:
    return [r.id for r in page.items]


def charges(actor: Actor, sort: str = "newest", **filters: Any) -> list[str]:
    return ids(reports.search_charges(actor, ChargeFilters(**filters), sort))


def test_charges_list_filters(some_charges: Actor) -> None:
    a = some_charges
    assert charges(a) == ["ch_a", "ch_b", "ch_c", "ch_d", "ch_e", "ch_f", "ch_g", "ch_h"]  # ch_x is deleted
    assert charges(a, status="succeeded") == ["ch_a", "ch_b", "ch_h"]
    assert charges(a, status="failed") == ["ch_c", "ch_d", "ch_e", "ch_f"]
    assert charges(a, status="pending") == ["ch_g"]
    assert charges(a, status="refunded") == ["ch_b"]
    assert charges(a, reason="insufficient_funds") == ["ch_c"]
    assert charges(a, reason="expired_card") == ["ch_d"]
    assert charges(a, reason="fraud") == ["ch_e"]
    assert charges(a, reason="other") == ["ch_f"]
    day = datetime(2026, 3, 13, tzinfo=UTC)  # T - 5 days falls on 13 March
    assert charges(a, date_from=day, date_to=day + timedelta(days=2)) == ["ch_d", "ch_e"]
    assert charges(a, date_from=NOW - timedelta(days=2, minutes=1)) == ["ch_a", "ch_b"]
    assert charges(a, amount_min=2500, amount_max=4599) == ["ch_a", "ch_e", "ch_f"]
    assert charges(a, amount_min=10000) == ["ch_b", "ch_d"]
    assert charges(a, currency="EUR") == ["ch_h"]
    assert charges(a, amount_max=2000, currency="usd") == ["ch_c", "ch_g"]
    assert charges(a, customer="cus_carol") == ["ch_d", "ch_e"]
    assert charges(a, customer="BOB@") == ["ch_b", "ch_c"]  # the start of an email, any case
    assert charges(a, customer="diaz") == ["ch_f", "ch_g"]  # a word of the name
    assert charges(a, customer="100%_sure") == []
    assert charges(a, status="failed", customer="cus_carol", amount_max=5000) == ["ch_e"]


def test_lists_say_how_many_match_and_stop_counting_at_the_cap(
    some_charges: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services import billing
    from services.reports import ListTotal

    a = some_charges
    assert reports.search_charges(a).total == ListTotal(8)  # the deleted one is not counted
    assert reports.search_charges(a, ChargeFilters(status="failed")).total == ListTotal(4)
    first = reports.search_charges(a, limit=3)
    later = reports.search_charges(a, cursor=first.next_cursor, limit=3)
    assert later.total == ListTotal(8)  # every page of a list says the same total
    assert billing.search_customers(a).total == ListTotal(4)
    assert billing.search_customers(a, "carol").total == ListTotal(1)
    monkeypatch.setattr(reports, "COUNT_CAP", 3)
    reports.shared_pages.forget()  # the page read above is shared until the store changes
    capped = reports.search_charges(a)
    assert capped.total == ListTotal(3, at_least=True) and capped.total.label == "3+"
    assert ListTotal(4221).label == "4,221"


def test_charges_list_rows_show_what_a_person_reads(some_charges: Actor) -> None:
    rows = {r.id: r for r in reports.search_charges(some_charges).items}
    b, d, e = rows["ch_b"], rows["ch_d"], rows["ch_e"]
    assert (b.amount.text, b.status_label, b.customer.label, b.customer.email) == (
        "$120.00",
        "Partly refunded ($20.00)",
        "Bob Baker",
        "bob@shop.example",
    )
    assert (d.amount.text, d.status_label, d.reason_label, d.failure_message) == (
        "$150.00",
        "Failed",
        "Expired card",
        "Your card was declined.",
    )
    assert e.reason_label == "Fraud block"
    assert rows["ch_h"].amount.text == "€20.00"


def test_charges_sort_by_date_and_amount_both_ways(some_charges: Actor) -> None:
    a = some_charges
    assert charges(a, "oldest") == ["ch_h", "ch_g", "ch_f", "ch_e", "ch_d", "ch_c", "ch_b", "ch_a"]
    assert charges(a, "amount_desc") == ["ch_d", "ch_b", "ch_a", "ch_e", "ch_f", "ch_h", "ch_g", "ch_c"]
    assert charges(a, "amount_asc") == ["ch_c", "ch_g", "ch_h", "ch_f", "ch_e", "ch_a", "ch_b", "ch_d"]


def test_bad_filters_and_cursors_are_refused_with_a_reason(some_charges: Actor) -> None:
    a = some_charges
    for bad in (
        {"status": "everything"},
        {"reason": "bad_luck"},
        {"amount_min": -1},
        {"amount_min": 500, "amount_max": 100},
        {"currency": "dollars"},
        {"date_from": NOW, "date_to": NOW - timedelta(days=1)},
        {"customer": "x" * 300},
    ):
        with pytest.raises(ValidationFailed):
            reports.search_charges(a, ChargeFilters(**bad))
    with pytest.raises(ValidationFailed, match="Sort by"):
        reports.search_charges(a, sort="random")
    with pytest.raises(ValidationFailed, match="page"):
        reports.search_charges(a, limit=500)
    first = reports.search_charges(a, limit=2)
    assert first.next_cursor
    for cursor in ("garbage", "newest:abc:ch_a", first.next_cursor.replace("newest", "amount_desc")):
        with pytest.raises(ValidationFailed, match="no longer valid"):
            reports.search_charges(a, cursor=cursor, limit=2)


# --- keyset pagination -----------------------------------------------------------------------------


def walk(fetch: Any, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = fetch(cursor, limit)
        pages.append(ids(page))
        assert len(page.items) <= limit
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


@pytest.mark.parametrize("sort", ["newest", "oldest", "amount_desc", "amount_asc"])
def test_charge_pages_walk_every_row_exactly_once_with_ties(people: Actor, sort: str) -> None:
    # 23 charges, four to a second and three to an amount: ties on either sort key.
    rows = [charge(f"ch_{n:02}", 1000 * (n // 3), T - 100 * (n // 4), customer_id="cus_alice") for n in range(23)]
    add(*rows, charge("ch_deleted", 1000, T - 100, deleted=True))
    key = (lambda c: (c.created, c.id)) if sort in ("newest", "oldest") else (lambda c: (c.amount, c.id))
    expected = [c.id for c in sorted(rows, key=key, reverse=sort in ("newest", "amount_desc"))]

    pages = walk(lambda cursor, limit: reports.search_charges(people, sort=sort, cursor=cursor, limit=limit), 5)

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for p in pages for i in p] == expected
    # The default page size takes them all at once.
    assert ids(reports.search_charges(people, sort=sort)) == expected


def test_a_new_charge_does_not_shift_the_next_page(people: Actor) -> None:
    add(*[charge(f"ch_{n}", 100, T - n * 60) for n in range(6)])
    first = reports.search_charges(people, limit=3)
    add(charge("ch_newest", 100, T + 60))
    second = reports.search_charges(people, cursor=first.next_cursor, limit=3)
    assert (ids(first), ids(second), second.next_cursor) == (["ch_0", "ch_1", "ch_2"], ["ch_3", "ch_4", "ch_5"], None)


def test_subscription_and_invoice_pages_walk_every_row_exactly_once(people: Actor) -> None:
    for n in range(11):
        subscription(f"sub_{n:02}", "active", [(1000 * (n // 2), "month", 1)], created=T - 10 * (n // 3))
    add(*[invoice(f"in_{n:02}", "open", 500 * (n // 4), created=T - 10 * (n // 2)) for n in range(11)])

    for sort in ("newest", "oldest", "amount_desc", "amount_asc"):
        subs = walk(lambda c, lim, s=sort: reports.search_subscriptions(people, sort=s, cursor=c, limit=lim), 4)
        with clock.freeze(NOW):
            invs = walk(lambda c, lim, s=sort: reports.search_invoices(people, sort=s, cursor=c, limit=lim), 4)
        assert [len(p) for p in subs] == [4, 4, 3] and [len(p) for p in invs] == [4, 4, 3]
        all_subs, all_invs = [i for p in subs for i in p], [i for p in invs for i in p]
        assert all_subs == ids(reports.search_subscriptions(people, sort=sort)), sort
        with clock.freeze(NOW):
            assert all_invs == ids(reports.search_invoices(people, sort=sort)), sort
        assert sorted(all_subs) == [f"sub_{n:02}" for n in range(11)]
        assert sorted(all_invs) == [f"in_{n:02}" for n in range(11)]
    newest = [i for p in walk(lambda c, lim: reports.search_subscriptions(people, cursor=c, limit=lim), 4) for i in p]
    assert newest[:4] == ["sub_02", "sub_01", "sub_00", "sub_05"]  # created desc, then id desc


# --- the subscriptions list --------------------------------------------------------------------------


def test_subscriptions_list_filters_sorts_and_rows(people: Actor) -> None:
    subscription("sub_a", "active", [(2000, "month", 3)], customer_id="cus_alice", created=T - 5 * DAY)
    subscription("sub_b", "past_due", [(120000, "year", 1)], customer_id="cus_bob", created=T - 4 * DAY)
    subscription("sub_c", "trialing", [(9900, "month", 1)], customer_id="cus_bob", created=T - 3 * DAY)
    subscription("sub_d", "canceled", [(500, "month", 1)], customer_id="cus_carol", created=T - 2 * DAY)
    subscription("sub_x", "active", [(500, "month", 1)], customer_id="cus_carol", created=T - DAY, deleted=True)

    def subs(sort: str = "newest", **f: Any) -> list[str]:
        return ids(reports.search_subscriptions(people, SubscriptionFilters(**f), sort))

    assert subs() == ["sub_d", "sub_c", "sub_b", "sub_a"]
    assert subs("oldest") == ["sub_a", "sub_b", "sub_c", "sub_d"]
    assert subs("amount_desc") == ["sub_b", "sub_c", "sub_a", "sub_d"]
    assert subs("amount_asc") == ["sub_d", "sub_a", "sub_c", "sub_b"]
    assert subs(status="past_due") == ["sub_b"]
    assert subs(status="trialing") == ["sub_c"]
    assert subs(customer="cus_bob") == ["sub_c", "sub_b"]
    assert subs(customer="carol@", status="canceled") == ["sub_d"]
    with pytest.raises(ValidationFailed):
        subs(status="zombie")
    rows = {r.id: r for r in reports.search_subscriptions(people).items}
    a, b, c = rows["sub_a"], rows["sub_b"], rows["sub_c"]
    assert (a.mrr.text, a.plan, a.status_label, a.customer.label, a.counts_in_mrr) == (
        "$60.00",
        "Pro × 3",
        "Active",
        "Alice Archer",
        True,
    )
    assert (b.mrr.text, b.status_label, b.counts_in_mrr) == ("$100.00", "Past due", True)
    assert (c.status_label, c.counts_in_mrr) == ("Trialing", False)


# --- the invoices list ------------------------------------------------------------------------------


def test_invoices_list_filters_with_overdue_and_rows(people: Actor) -> None:
    add(
        invoice("in_1", "open", 5000, due=T - DAY, customer_id="cus_alice", created=T - 40 * DAY),
        invoice("in_2", "open", 3000, due=T + DAY, customer_id="cus_bob", created=T - 30 * DAY),
        invoice("in_3", "paid", 7000, remaining=0, due=T - 9 * DAY, customer_id="cus_bob", created=T - 20 * DAY),
        invoice("in_4", "void", 100, customer_id="cus_carol", created=T - 10 * DAY),
        invoice("in_5", "open", 800, due=None, customer_id="cus_carol", created=T - 5 * DAY),
        invoice("in_6", "open", 9000, due=T - DAY, customer_id="cus_carol", created=T - 1 * DAY, deleted=True),
    )

    def invs(sort: str = "newest", **f: Any) -> list[str]:
        with clock.freeze(NOW):
            return ids(reports.search_invoices(people, InvoiceFilters(**f), sort))

    assert invs() == ["in_5", "in_4", "in_3", "in_2", "in_1"]
    assert invs("amount_desc") == ["in_3", "in_1", "in_2", "in_5", "in_4"]
    assert invs("amount_asc") == ["in_4", "in_5", "in_2", "in_1", "in_3"]
    assert invs(status="open") == ["in_5", "in_2", "in_1"]
    assert invs(status="overdue") == ["in_1"]
    assert invs(status="paid") == ["in_3"]
    assert invs(customer="cus_bob") == ["in_3", "in_2"]
    assert invs(customer="carol") == ["in_5", "in_4"]
    assert invs(date_from=NOW - timedelta(days=35), date_to=NOW - timedelta(days=15)) == ["in_3", "in_2"]
    with pytest.raises(ValidationFailed):
        invs(status="late")
    with clock.freeze(NOW):
        rows = {r.id: r for r in reports.search_invoices(people).items}
    assert (rows["in_1"].status_label, rows["in_1"].overdue, rows["in_1"].remaining.text) == ("Overdue", True, "$50.00")
    assert (rows["in_2"].status_label, rows["in_2"].overdue) == ("Open", False)
    assert (rows["in_3"].status_label, rows["in_3"].total.text, rows["in_3"].remaining.text) == (
        "Paid",
        "$70.00",
        "$0.00",
    )
    assert (rows["in_2"].number, rows["in_2"].customer.label) == ("INV-2", "Bob Baker")


# --- who may read them ------------------------------------------------------------------------------


def test_a_read_only_member_may_read_every_report_and_an_unknown_role_may_not(people: Actor) -> None:
    add(charge("ch_1", 1000, T - 60, customer_id="cus_alice"), invoice("in_1", "open", 500, due=T - 1))
    subscription("sub_1", "active", [(1000, "month", 1)])
    reader = member_actor("read_only", "reader@example.com")

    with clock.freeze(NOW):
        board = reports.dashboard(reader)
    assert [m.text for m in board.mrr] == ["$10.00"] and board.invoices[0].overdue.text == "$5.00"
    assert ids(reports.search_charges(reader)) == ["ch_1"]
    assert ids(reports.search_subscriptions(reader)) == ["sub_1"]
    with clock.freeze(NOW):
        assert ids(reports.search_invoices(reader)) == ["in_1"]

    stranger = Actor(reader.user_id, reader.email, "intern", Source.DASHBOARD)
    with clock.freeze(NOW):
        assert [s.current.net.text for s in reports.revenue_comparison(reader, "7d").series] == ["$10.00"]
    for call in (
        lambda: reports.dashboard(stranger),
        lambda: reports.revenue_comparison(stranger, "7d"),
        lambda: reports.search_charges(stranger),
        lambda: reports.search_subscriptions(stranger),
        lambda: reports.search_invoices(stranger),
    ):
        with pytest.raises(PermissionDenied, match="not known"):
            call()


SLOW_COUNT = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000000) SELECT count(*) FROM n"
)


def test_a_total_that_would_cost_too_much_is_given_up_and_the_page_still_reads(
    some_charges: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    from services import db
    from services.db import QueryOverBudget, read_within

    with session_scope() as session:  # a caller's transaction, open around the budgeted read
        started = time.monotonic()
        with pytest.raises(QueryOverBudget):
            read_within(sa.text(SLOW_COUNT), 50)
        assert time.monotonic() - started < 5  # stopped, not run to its end (minutes)
        assert session.execute(sa.text("SELECT 1")).scalar_one() == 1  # the transaction is still usable
    assert read_within(sa.text("SELECT 41 + 1"), 50)[0][0] == 42  # and the budgeted pool too
    store = db.get_engine()
    if store.dialect.name == "postgresql":  # its own pool of connections, closed with the store's
        budgeted = db._budgeted_engine(store, 50)
        assert budgeted.pool.checkedin() == 1
        store.dispose()
        assert budgeted.pool.checkedin() == 0
    monkeypatch.setattr(reports, "count_matching", lambda stmt: None)
    page = reports.search_charges(some_charges)
    assert page.total is None and len(page.items) == 8  # the rows come without a total


def test_a_page_reads_its_rows_while_its_total_is_counted(some_charges: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's answer waits for the longer of its rows and its total, not for both in turn:
    here each waits for the other to have begun, which only reads running side by side pass."""
    count_began, rows_began, waited = threading.Event(), threading.Event(), []
    real_count, real_page_of = reports.count_matching, reports._page_of

    def count(stmt: Any, budget_ms: int | None = None) -> reports.ListTotal | None:
        count_began.set()
        waited.append(("count", rows_began.wait(5)))
        return real_count(stmt, budget_ms)

    def page_of(*args: Any) -> Any:
        rows_began.set()
        waited.append(("rows", count_began.wait(5)))
        return real_page_of(*args)

    monkeypatch.setattr(reports, "count_matching", count)
    monkeypatch.setattr(reports, "_page_of", page_of)
    page = reports.search_charges(some_charges, ChargeFilters(status="failed"))
    assert sorted(waited) == [("count", True), ("rows", True)]
    assert len(page.items) == 4 and page.total == reports.ListTotal(4)


def test_a_process_forked_after_pages_were_counted_counts_its_own(some_charges: Actor) -> None:
    """The threads pages count on are the process's own: a child forked from a process that
    had counted (a bench, a pre-forking server) must not wait for its parent's threads."""
    from services import db

    assert reports.search_charges(some_charges).total == reports.ListTotal(8)  # the parent's threads
    pid = os.fork()
    if pid == 0:  # the child: its own connections, then a page with its total
        code = 1
        try:
            db.get_engine().dispose(close=False)
            db._budgeted_engine.cache_clear()
            reports.shared_pages.forget()
            reports.late_totals.forget()
            page = reports.search_charges(some_charges, ChargeFilters(status="failed"))
            code = 0 if page.total == reports.ListTotal(4) else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while (ended := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child waited for ever on its parent's counting threads")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(ended[1]) == 0


def test_a_total_too_dear_for_its_page_is_counted_on_its_own_once_per_store_change(
    some_charges: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page spends at most PAGE_COUNT_BUDGET_MS on its total; one that would take longer (as
    "refunded" at a million charges) comes without it, and `count_charges` counts it with the
    larger budget: once for every tab asking, until the store changes."""
    from services import notices

    real, in_page, late = reports.count_matching, [], []

    def dear(stmt: Any, budget_ms: int | None = None) -> reports.ListTotal | None:
        if budget_ms is None:  # a page's own count
            in_page.append(budget_ms)
            return None
        late.append(budget_ms)
        return real(stmt, budget_ms)

    monkeypatch.setattr(reports, "count_matching", dear)
    failed = ChargeFilters(status="failed")
    page = reports.search_charges(some_charges, failed)
    assert page.total is None and len(page.items) == 4  # the rows, without waiting for their total
    reports.shared_pages.forget()  # another page of the same filters, say
    assert reports.search_charges(some_charges, failed, sort="oldest").total is None
    assert len(in_page) == 1  # a count that just failed for these filters is not tried again at once
    assert [reports.count_charges(some_charges, failed) for _ in range(5)] == [reports.ListTotal(4)] * 5
    assert len(late) == 1
    # Counted, the total comes with the next page of those filters (no second count).
    assert reports.search_charges(some_charges, failed, sort="amount_desc").total == reports.ListTotal(4)
    assert len(in_page) == 1 and len(late) == 1
    with session_scope() as s:
        s.get(StripeCharge, "ch_a").status = "failed"
    notices.publish("charge", ["ch_a"])
    assert reports.count_charges(some_charges, failed) == reports.ListTotal(5) and len(late) == 2
    assert reports.count_subscriptions(some_charges) == reports.ListTotal(0)
    assert reports.count_invoices(some_charges) == reports.ListTotal(0)
    with pytest.raises(ValidationFailed):  # the list's own checks
        reports.count_charges(some_charges, ChargeFilters(status="lost"))
    stranger = Actor(some_charges.user_id, some_charges.email, "intern", Source.DASHBOARD)
    with pytest.raises(PermissionDenied):
        reports.count_charges(stranger, failed)


def test_a_total_that_cannot_be_counted_even_on_its_own_is_not_tried_again_for_a_while(
    some_charges: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty open pages of a filter nobody can count (a common customer prefix at a million
    charges) must not keep a core busy counting it after every store change."""
    from services import notices

    tried: list[int] = []
    monkeypatch.setattr(reports, "count_matching", lambda stmt, budget_ms=0: tried.append(budget_ms))
    for n in range(5):
        assert reports.count_charges(some_charges, ChargeFilters(customer="ali")) is None
        notices.publish("charge", [f"ch_{n}"])
    assert tried == [reports.LATE_COUNT_BUDGET_MS]
    assert reports.count_charges(some_charges, ChargeFilters(customer="bob")) is None  # another filter is tried
    assert len(tried) == 2


def test_walking_every_page_counts_no_totals(some_charges: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export walks a list page by page; a total per page would be a query it throws away."""
    counted: list[Any] = []
    monkeypatch.setattr(reports, "count_matching", lambda *args, **kwargs: counted.append(args))
    assert len(list(reports.walk(reports.charges_query(), page_size=3))) == 8
    assert counted == []


def test_open_lists_share_one_read_until_the_store_changes(
    some_charges: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many open charges lists re-reading the same page read the store once; a store change (its
    notice) makes the next read fresh."""
    from services import notices

    reads: list[int] = []
    real = reports.read_page
    monkeypatch.setattr(reports, "read_page", lambda *a, **k: reads.append(1) or real(*a, **k))
    pages = [reports.search_charges(some_charges) for _ in range(20)]
    assert len(reads) == 1 and all(p.items == pages[0].items for p in pages)
    assert len({id(p) for p in [reports.search_charges(some_charges, sort="oldest"), pages[0]]}) == 2
    assert len(reads) == 2  # another sort is another page
    with session_scope() as s:
        s.get(StripeCharge, "ch_b").description = "Renamed in Stripe"
    notices.publish("charge", ["ch_b"])
    assert any(r.description == "Renamed in Stripe" for r in reports.search_charges(some_charges).items)
    assert len(reads) == 3
