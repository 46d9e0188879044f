"""Reports from the synced store: the dashboard's numbers and the charges, subscriptions and
invoices lists. Nothing here calls Stripe (DESIGN: reads come from the synced store).

Definitions a person reading the dashboard relies on:

- **MRR** counts `active` and `past_due` subscriptions, as Stripe's own dashboard does: a
  past-due subscription is still owed and usually recovered by retries. `trialing` (not paying
  yet), `canceled`, `unpaid`, `incomplete*` and `paused` ones are left out. `stripe_subscription.mrr`
  is already the monthly amount (yearly prices / 12, times quantity), normalised by the sync.
- **Revenue** per UTC day over the last 30 days (today included): succeeded, paid charges by
  the day they were made, minus refunds by the day they were made (failed and canceled refunds
  give nothing back). Net can be negative on a day with more refunds than sales. The dashboard
  may choose another period (`revenue_comparison`: last 7, 30 or 90 days, or month to date),
  compared with the period before it (the same number of days, or the same days of last month).
- **Failed payments this week** are the failed charges of the last 7 days (a rolling week, so a
  Monday morning still shows the weekend), grouped by reason; a customer with two or more of
  them in that week is a *repeat* customer.
- **Open invoices** are those with status `open`; an open invoice is **overdue** when its
  `due_date` is before now (invoices charged automatically have no due date and are never
  overdue). Totals are what is still owed (`amount_remaining`).

Money is never added across currencies: every total is per currency. Deleted mirror rows are
never shown. MRR, revenue and open invoices come from rollup tables the database keeps in step
with every mirror write (migration 0010), so the dashboard reads tens of rows, not tens of
thousands. Lists page with a keyset cursor (the last row's sort key and id), never OFFSET, so
a deep page costs what the first does and rows arriving meanwhile do not shift the pages.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from services import audit, clock, notices
from services.db import QueryOverBudget, read_within, session_scope
from services.errors import ValidationFailed
from services.models import (
    NO_DUE_DAY,
    RollupFailedCustomer,
    RollupFailedDay,
    RollupMrr,
    RollupOpenInvoices,
    RollupRevenueDay,
    StripeCharge,
    StripeCustomer,
    StripeInvoice,
    StripeProduct,
    StripeRefund,
    StripeSubscription,
    StripeSubscriptionItem,
    orm_attribute,
)
from services.money import format_money, is_currency_code
from services.permissions import Actor
from services.rollups import FAILURE_REASON_SQL, FRAUD_CODES

DAY = 86_400
AnyRead = sa.Select[*tuple[Any, ...]]  # a statement kept for reading, whatever its columns
MRR_STATUSES = ("active", "past_due")
REVENUE_DAYS = 30
FAILED_WINDOW_DAYS = 7
RECENT_REFUNDS = 10
FAILED_CUSTOMERS_SHOWN = 20  # per reason; the rest are counted
REFUND_STATUSES_NOT_GIVEN_BACK = ("failed", "canceled")
PAGE_SIZE = 25
MAX_PAGE_SIZE = 50
MAX_TEXT = 200


# Failure reasons as the dashboard groups them, from `stripe_charge.decline_reason` (the
# issuer's decline code or Radar's outcome reason, else the failure code; see
# services.sync.decline_reason_of) and `outcome_type` ("blocked" when Radar stopped it).
class FailureReason(StrEnum):
    """The dashboard's groups of failed payments."""

    EXPIRED_CARD = "expired_card"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    FRAUD = "fraud"
    OTHER = "other"


FAILURE_REASONS: dict[FailureReason, str] = {
    FailureReason.EXPIRED_CARD: "Expired card",
    FailureReason.INSUFFICIENT_FUNDS: "Insufficient funds",
    FailureReason.FRAUD: "Fraud block",
    FailureReason.OTHER: "Other",
}
CHARGE_STATUSES: dict[str, str] = {
    "succeeded": "Succeeded",
    "failed": "Failed",
    "pending": "Pending",
    "refunded": "Refunded (in part or in full)",
}
SUBSCRIPTION_STATUSES: dict[str, str] = {
    "active": "Active",
    "past_due": "Past due",
    "trialing": "Trialing",
    "unpaid": "Unpaid",
    "paused": "Paused",
    "incomplete": "Incomplete",
    "incomplete_expired": "Incomplete (expired)",
    "canceled": "Canceled",
}
INVOICE_STATUSES: dict[str, str] = {
    "draft": "Draft",
    "open": "Open",
    "overdue": "Overdue",  # synthetic: open and past its due date
    "paid": "Paid",
    "uncollectible": "Uncollectible",
    "void": "Void",
}
# Sort name → (sort key, descending). The key's column is chosen per list.
SORTS: dict[str, tuple[str, bool]] = {
    "newest": ("created", True),
    "oldest": ("created", False),
    "amount_desc": ("amount", True),
    "amount_asc": ("amount", False),
}


# --- small helpers ---------------------------------------------------------------------------


def failure_reason(decline_reason: str | None, outcome_type: str | None) -> FailureReason:
    """The dashboard's group for a failed charge."""
    if (decline_reason or "") in FRAUD_CODES or outcome_type == "blocked":
        return FailureReason.FRAUD
    if decline_reason in (FailureReason.EXPIRED_CARD, FailureReason.INSUFFICIENT_FUNDS):
        return FailureReason(decline_reason)
    return FailureReason.OTHER


def _failure_reason_sql() -> sa.ColumnElement[str]:
    """`failure_reason` as one SQL expression, so the store groups failed charges by it: the
    rollup triggers' own definition (`rollups.FAILURE_REASON_SQL`), so the two cannot differ."""
    return sa.literal_column(FAILURE_REASON_SQL.format(r=StripeCharge.__tablename__))


def _reason_condition(reason: str) -> sa.ColumnElement[bool]:
    """`failure_reason` as SQL, NULL-safe, for filtering the charges list."""
    code = sa.func.coalesce(col(StripeCharge.decline_reason), "")
    fraud = sa.or_(code.in_(sorted(FRAUD_CODES)), sa.func.coalesce(col(StripeCharge.outcome_type), "") == "blocked")
    failed = col(StripeCharge.status) == "failed"
    if reason == "fraud":
        return sa.and_(failed, fraud)
    if reason == "other":
        return sa.and_(failed, sa.not_(fraud), code.not_in(["expired_card", "insufficient_funds"]))
    return sa.and_(failed, sa.not_(fraud), code == reason)


def _ts(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValidationFailed("Times must carry a time zone.")
    return int(moment.timestamp())


def _now() -> datetime:
    """This moment, from the one clock (tests move it rather than pass times in)."""
    return clock.now()


@dataclass(frozen=True)
class Money:
    amount: int  # minor units
    currency: str
    text: str

    @classmethod
    def of(cls, amount: int, currency: str) -> Money:
        return cls(int(amount), currency, format_money(int(amount), currency))


def _per_currency(totals: dict[str, int]) -> list[Money]:
    """Per-currency amounts, biggest first (then by code): never one sum across currencies."""
    return [Money.of(v, c) for c, v in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]


@dataclass(frozen=True)
class CustomerRef:
    id: str
    name: str
    email: str

    @property
    def label(self) -> str:
        return self.name or self.email or self.id


@functools.cache
def _customers_read() -> AnyRead:
    c = StripeCustomer
    return sa.select(col(c.id), col(c.name), col(c.email), col(c.deleted)).where(
        col(c.id).in_(sa.bindparam("ids", expanding=True))
    )


def customers_by_id(session: Session, ids: Iterable[str | None]) -> dict[str, tuple[CustomerRef, bool]]:
    """Name and email of each of the given customers, and whether Stripe deleted it, by primary
    key (one kept query). Failed-payment mail needs the flag: a deleted customer gets none."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = session.connection().execute(_customers_read(), {"ids": wanted})
    return {r[0]: (CustomerRef(r[0], r[1] or "", (r[2] or "").strip()), bool(r[3])) for r in rows}


def customer_refs(session: Session, ids: Iterable[str | None]) -> dict[str, CustomerRef]:
    """Names and emails of the given customers: every list, the dashboard, search and the
    agent's reads name customers through this."""
    return {key: ref for key, (ref, _) in customers_by_id(session, ids).items()}


def _customer_ref(known: dict[str, CustomerRef], customer_id: str | None, email: str | None = None) -> CustomerRef:
    if not customer_id:
        return CustomerRef("", "", email or "")
    return known.get(customer_id) or CustomerRef(customer_id, "", email or "")


# --- the dashboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MrrTotal:
    currency: str
    amount: int
    text: str
    subscriptions: int  # active + past due
    past_due: int  # of which past due
    past_due_amount: int
    past_due_text: str


@dataclass(frozen=True)
class RevenueDay:
    day: date  # a UTC day
    gross: int
    refunded: int
    net: int
    net_text: str


@dataclass(frozen=True)
class RevenueSeries:
    currency: str
    days: list[RevenueDay]  # every day of the window, oldest first, zero where nothing happened
    gross: Money
    refunded: Money
    net: Money


@dataclass(frozen=True)
class FailedCustomer:
    customer: CustomerRef
    failures: int  # failed payments this week for this reason
    week_failures: int  # failed payments this week, every reason
    repeat: bool  # two or more failed payments this week
    last_failed: int = 0  # the newest of them (Unix time)


@dataclass(frozen=True)
class FailedGroup:
    reason: FailureReason
    label: str
    count: int
    totals: list[Money]
    customers: list[FailedCustomer]  # most failures first
    more_customers: int  # customers beyond those listed


@dataclass(frozen=True)
class InvoiceTotals:
    currency: str
    open_count: int  # every open invoice, overdue ones included
    open: Money
    overdue_count: int
    overdue: Money
    not_due_count: int
    not_due: Money


@dataclass(frozen=True)
class RecentRefund:
    id: str
    charge_id: str
    customer: CustomerRef
    amount: Money
    status: str
    reason: str
    created: int


@dataclass(frozen=True)
class Dashboard:
    now: int
    mrr: list[MrrTotal]
    revenue: list[RevenueSeries]
    revenue_since: date
    failed: list[FailedGroup]  # always the four groups, in FAILURE_REASONS order
    failed_count: int
    repeat_customers: list[FailedCustomer]
    failed_since: int
    invoices: list[InvoiceTotals]
    recent_refunds: list[RecentRefund]


# The dashboard is the same for every viewer and costs tens of milliseconds at scale
# (bench/pages), while every open dashboard re-reads it on each store change. So one read is
# kept for every viewer (`SharedReads`, defined below) until the store changes (a notice) or for
# at most this long (time windows move), by the clock: a clock moved back, or on by this much,
# gets a fresh one.
DASHBOARD_CACHE_SECONDS = 15.0


def dashboard(actor: Actor) -> Dashboard:
    """Everything the dashboard home shows, from the store, at this moment (or a copy read
    since the last store change, at most DASHBOARD_CACHE_SECONDS earlier by the clock)."""
    audit.authorize_read(actor, "dashboard.view")
    return _kept_dashboard.read("dashboard", lambda: _compute_dashboard(_now()))


def forget_dashboard() -> None:
    """Drop the kept copy (a store swapped under the process: tests, a re-created instance)."""
    _kept_dashboard.forget()


def _compute_dashboard(at: datetime) -> Dashboard:
    with session_scope() as session:
        return Dashboard(
            now=_ts(at),
            mrr=_mrr(session),
            revenue=_revenue(session, at),
            revenue_since=at.date() - timedelta(days=REVENUE_DAYS - 1),
            **_failed(session, at),
            failed_since=_ts(at) - FAILED_WINDOW_DAYS * DAY,
            invoices=_invoice_totals(session, _ts(at)),
            recent_refunds=_recent_refunds(session),
        )


@functools.cache
def _mrr_read() -> AnyRead:
    # rollup_mrr: a row per (currency, status), kept by triggers (migration 0010).
    m = RollupMrr
    return sa.select(col(m.currency), col(m.status), col(m.subscriptions), col(m.mrr)).where(
        col(m.status).in_(MRR_STATUSES)
    )


def _mrr(session: Session) -> list[MrrTotal]:
    totals: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)  # currency → status → (n, mrr)
    for cur, status, n, amount in session.connection().execute(_mrr_read()):
        totals[cur][status] = (int(n), int(amount))
    out = []
    for cur, by_status in totals.items():
        n = sum(v[0] for v in by_status.values())
        if not n:
            continue  # a currency whose last paying subscription has ended
        total = sum(v[1] for v in by_status.values())
        pd_n, pd_amount = by_status.get("past_due", (0, 0))
        out.append(MrrTotal(cur, total, format_money(total, cur), n, pd_n, pd_amount, format_money(pd_amount, cur)))
    return sorted(out, key=lambda m: (-m.amount, m.currency))


def _utc_day(day: date) -> int:
    """`day` as the rollup's day number (`created // 86400`)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) // DAY


@functools.cache
def _revenue_days_read() -> AnyRead:
    r = RollupRevenueDay
    return sa.select(col(r.currency), col(r.day), col(r.gross), col(r.refunded)).where(
        col(r.day) >= sa.bindparam("first_day"), col(r.day) < sa.bindparam("end_day")
    )


def _revenue_rows(session: Session, first: date, days: int) -> dict[str, dict[int, tuple[int, int]]]:
    """(gross, refunded) per currency and day offset from `first`, for `days` UTC days: one
    range read of rollup_revenue_day (a row per currency and UTC day, migration 0010), so tens
    of rows whatever the number of charges. Currencies with nothing in the window are left out."""
    first_day = _utc_day(first)
    rows: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
    read = _revenue_days_read()
    for cur, day, g, rf in session.connection().execute(read, {"first_day": first_day, "end_day": first_day + days}):
        if g or rf:
            rows[cur][day - first_day] = (int(g), int(rf))
    return rows


def _series(currency: str, first: date, days: int, rows: Mapping[int, tuple[int, int]]) -> RevenueSeries:
    """Every day of the window, oldest first, zero where nothing happened, with the totals."""
    per_day = []
    for i in range(days):
        g, rf = rows.get(i, (0, 0))
        per_day.append(RevenueDay(first + timedelta(days=i), g, rf, g - rf, format_money(g - rf, currency)))
    g_total, r_total = sum(d.gross for d in per_day), sum(d.refunded for d in per_day)
    net = Money.of(g_total - r_total, currency)
    return RevenueSeries(currency, per_day, Money.of(g_total, currency), Money.of(r_total, currency), net)


def _revenue(session: Session, at: datetime) -> list[RevenueSeries]:
    first = at.date() - timedelta(days=REVENUE_DAYS - 1)
    rows = _revenue_rows(session, first, REVENUE_DAYS)
    series = [_series(cur, first, REVENUE_DAYS, by_day) for cur, by_day in rows.items()]
    return sorted(series, key=lambda s: (-s.gross.amount, s.currency))


# --- revenue over a chosen period, against the period before -----------------------------------

MONTH_TO_DATE = "mtd"
REVENUE_PERIODS: dict[str, str] = {
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    MONTH_TO_DATE: "Month to date",
}
DEFAULT_REVENUE_PERIOD = "30d"  # what the dashboard always showed (REVENUE_DAYS)


@dataclass(frozen=True)
class RevenuePeriod:
    """A revenue period in whole UTC days (the rollup's days), today included, and the period
    it is compared with: the same number of days just before, or for month to date the same
    days of the previous month (cut at that month's end, so 1-31 March compares with February)."""

    key: str  # a REVENUE_PERIODS key
    label: str  # "Last 7 days"
    first: date
    last: date  # included: today
    previous_first: date
    previous_last: date  # included
    previous_label: str  # "previous 7 days", "same days last month (1–18 February)"

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def previous_days(self) -> int:
        return (self.previous_last - self.previous_first).days + 1


def revenue_period(key: str, at: datetime) -> RevenuePeriod:
    """The period `key` as it stands at `at`; refused in plain words when it is not offered."""
    if key not in REVENUE_PERIODS:
        raise ValidationFailed(f"Choose a period from the list: {', '.join(REVENUE_PERIODS.values())}.")
    today = at.astimezone(UTC).date()
    if key == MONTH_TO_DATE:
        first = today.replace(day=1)
        previous_last_of_month = first - timedelta(days=1)
        previous_first = previous_last_of_month.replace(day=1)
        previous_last = min(previous_first + timedelta(days=today.day - 1), previous_last_of_month)
        month = f"{previous_first:%B}"
        span = f"1 {month}" if previous_last == previous_first else f"1–{previous_last.day} {month}"
        label = f"same days last month ({span})"
        return RevenuePeriod(key, REVENUE_PERIODS[key], first, today, previous_first, previous_last, label)
    days = int(key.removesuffix("d"))
    first = today - timedelta(days=days - 1)
    previous_last = first - timedelta(days=1)
    return RevenuePeriod(
        key,
        REVENUE_PERIODS[key],
        first,
        today,
        previous_last - timedelta(days=days - 1),
        previous_last,
        f"previous {days} days",
    )


@dataclass(frozen=True)
class RevenueComparisonSeries:
    """One currency's net revenue over the period and over the period before."""

    currency: str
    current: RevenueSeries
    previous: RevenueSeries
    change: float | None  # net change in percent; None when the period before netted nothing
    change_text: str  # "+12.4% vs previous 30 days", or "no previous data"


@dataclass(frozen=True)
class RevenueComparison:
    period: RevenuePeriod
    series: list[RevenueComparisonSeries]  # biggest gross first; a currency active in either period


NO_PREVIOUS_DATA = "no previous data"


def _change(current: int, previous: int) -> float | None:
    """Percent change of net revenue; against a negative net (refunds outweighed sales) the
    sign still says whether things got better."""
    if previous == 0:
        return None
    return (current - previous) * 100 / abs(previous)


def _change_text(change: float | None, period: RevenuePeriod) -> str:
    if change is None:
        return NO_PREVIOUS_DATA
    rounded = round(change, 1) + 0.0  # no "-0.0%"
    return f"{rounded:+,.1f}% vs {period.previous_label}"


def revenue_comparison(actor: Actor, period: str = DEFAULT_REVENUE_PERIOD) -> RevenueComparison:
    """Net revenue per UTC day over `period` (a REVENUE_PERIODS key) and over the period before,
    per currency, with the change in percent: two range reads of the revenue rollup (tens of
    rows each whatever the number of charges), so it is not kept like `dashboard`."""
    audit.authorize_read(actor, "dashboard.view")
    chosen = revenue_period(period, _now())
    with session_scope() as session:
        now_rows = _revenue_rows(session, chosen.first, chosen.days)
        before_rows = _revenue_rows(session, chosen.previous_first, chosen.previous_days)
    out = []
    for cur in set(now_rows) | set(before_rows):
        current = _series(cur, chosen.first, chosen.days, now_rows.get(cur, {}))
        previous = _series(cur, chosen.previous_first, chosen.previous_days, before_rows.get(cur, {}))
        change = _change(current.net.amount, previous.net.amount)
        out.append(RevenueComparisonSeries(cur, current, previous, change, _change_text(change, chosen)))
    out.sort(key=lambda s: (-s.current.gross.amount, -s.previous.gross.amount, s.currency))
    return RevenueComparison(chosen, out)


# The dashboard's statements are built once per process, their moving values (the week's
# bounds, how many newest failures each reason still wants) bound at each read: building them
# afresh cost more than running them (the SQLAlchemy constructs of `_failed` alone took about
# 3 ms of a 15 ms dashboard), and a statement kept keeps its compiled form's cache key too.


class _FailedReads(NamedTuple):
    counts: sa.CompoundSelect  # (currency, reason, failures, amount, naming a customer)
    repeats: AnyRead  # (customer, reason, failures, newest) of possible repeat customers
    newest_once: sa.CompoundSelect  # (reason, customer, created), newest first, per reason


@functools.cache
def _failed_reads() -> _FailedReads:
    c, f, r = StripeCharge, RollupFailedDay, RollupFailedCustomer
    since, until = sa.bindparam("since", type_=sa.Integer), sa.bindparam("until", type_=sa.Integer)
    # The literal lets SQLite see ix_stripe_charge_failed's condition holds (every column is in it).
    failed = (col(c.status) == sa.literal_column("'failed'"), col(c.deleted).is_(False))
    named = sa.func.coalesce(col(c.customer_id), "") != ""
    reason_sql = _failure_reason_sql()
    # The UTC days wholly inside the week from the rollup; its first and last part-days from
    # the charges (one index range each).
    whole_days = (
        sa.select(
            col(f.currency),
            col(f.reason),
            sa.func.sum(f.failures),
            sa.func.sum(f.amount),
            sa.func.sum(f.with_customer),
        )
        .where(col(f.day) >= sa.bindparam("first_whole_day"), col(f.day) <= sa.bindparam("last_whole_day"))
        .group_by(col(f.currency), col(f.reason))
    )
    part_days = [
        sa.select(
            col(c.currency),
            reason_sql,
            sa.func.count(),
            sa.func.sum(c.amount),
            sa.func.sum(sa.case((named, 1), else_=0)),
        )
        .where(*failed, col(c.created) >= low, col(c.created) <= high)
        .group_by(col(c.currency), reason_sql)
        for low, high in ((since, sa.bindparam("first_whole_from") - 1), (sa.bindparam("last_whole_to"), until))
    ]
    # Repeat customers: only one whose second newest failure is inside the week can be one.
    repeats = (
        sa.select(col(c.customer_id), reason_sql, sa.func.count(), sa.func.max(c.created))
        .where(
            col(c.customer_id).in_(sa.select(col(r.customer_id)).where(col(r.second_newest) >= since)),
            *failed,
            col(c.created) >= since,
            col(c.created) <= until,
        )
        .group_by(col(c.customer_id), reason_sql)
    )
    # Each reason's newest failures, walking the week's index from its end, as many as asked.
    walks = [
        sa.select(
            sa.select(sa.literal_column(f"'{reason.value}'").label("reason"), col(c.customer_id), col(c.created))
            .where(*failed, col(c.created) >= since, col(c.created) <= until, named, _reason_condition(reason))
            .order_by(col(c.created).desc(), col(c.customer_id))
            .limit(sa.bindparam(f"wanted_{reason.value}", type_=sa.Integer))
            .subquery()
        )
        for reason in FAILURE_REASONS
    ]
    return _FailedReads(sa.union_all(whole_days, *part_days), repeats, sa.union_all(*walks))


def _failed(session: Session, at: datetime) -> dict[str, Any]:
    """Failed payments of the last FAILED_WINDOW_DAYS by reason, their customers ranked.

    Read from the rollups (migration 0021) and the week's two partial days, never the week's
    every failure: at 10,000,000 charges a week holds ~5,000 of them, and grouping them all
    took 30-50 ms on PostgreSQL (bench.pages). Customers who failed twice or more (repeat)
    come from `rollup_failed_customer`; every other customer of the week failed exactly once,
    so a reason's list goes on with its newest failures, and its number of customers is its
    failures naming one, less the repeat customers' extra ones."""
    until = _ts(at)
    since = until - FAILED_WINDOW_DAYS * DAY
    first_whole, last_whole = since // DAY + 1, until // DAY - 1
    week_bounds = {"since": since, "until": until}
    reads = _failed_reads()
    store = session.connection()  # plain Core reads: no ORM entities here
    counts = dict.fromkeys(FAILURE_REASONS, 0)
    totals: dict[str, dict[str, int]] = {reason: defaultdict(int) for reason in FAILURE_REASONS}
    customers = dict.fromkeys(FAILURE_REASONS, 0)  # failures naming a customer, for now
    for cur, reason, n, amount, with_customer in store.execute(
        reads.counts,
        {
            **week_bounds,
            "first_whole_day": first_whole,
            "last_whole_day": last_whole,
            "first_whole_from": first_whole * DAY,
            "last_whole_to": (last_whole + 1) * DAY,
        },
    ):
        counts[reason] += int(n)
        totals[reason][cur] += int(amount or 0)
        customers[reason] += int(with_customer or 0)

    week: dict[str, int] = defaultdict(int)  # customer → failures this week, every reason
    last: dict[str, int] = defaultdict(int)  # customer → newest failure this week
    per_reason: dict[str, dict[str, int]] = {reason: {} for reason in FAILURE_REASONS}  # repeat customers' failures
    for found, reason, n, newest in store.execute(reads.repeats, week_bounds):
        customer_id = str(found)  # never NULL: it matched a rollup row
        per_reason[reason][customer_id] = int(n)
        week[customer_id] += int(n)
        last[customer_id] = max(last[customer_id], int(newest))
    repeat = {cid for cid, n in week.items() if n >= 2}

    def rank(pair: tuple[str, int]) -> tuple[int, int, int, str]:
        """Most failures this week first, then the most recent; by id (not by name) so that
        only the customers shown need their names read."""
        return (-week[pair[0]], -pair[1], -last[pair[0]], pair[0])

    listed: dict[str, list[tuple[str, int]]] = {}
    wanted = {}
    for reason in FAILURE_REASONS:
        theirs = {cid: n for cid, n in per_reason[reason].items() if cid in repeat}
        customers[reason] -= sum(n - 1 for n in theirs.values())
        listed[reason] = sorted(theirs.items(), key=rank)[:FAILED_CUSTOMERS_SHOWN]
        # The newest once-only failures of this reason fill its list; the repeat customers' own
        # failures of it may come first: read that many more (none when the list is full).
        missing = FAILED_CUSTOMERS_SHOWN - len(listed[reason])
        wanted[f"wanted_{reason.value}"] = missing + sum(theirs.values()) if missing > 0 else 0
    once = store.execute(reads.newest_once, {**week_bounds, **wanted}).all() if any(wanted.values()) else []
    for reason, customer_id, created in sorted(once, key=lambda row: (-row[2], row[1])):
        if customer_id not in repeat and len(listed[reason]) < FAILED_CUSTOMERS_SHOWN:
            week[customer_id], last[customer_id] = 1, int(created)
            listed[reason].append((customer_id, 1))

    known = customer_refs(session, [cid for pairs in listed.values() for cid, _ in pairs] + sorted(repeat))

    def entry(customer_id: str, n: int) -> FailedCustomer:
        ref = _customer_ref(known, customer_id)
        return FailedCustomer(ref, n, week[customer_id], week[customer_id] >= 2, last[customer_id])

    groups = [
        FailedGroup(
            reason,
            label,
            counts[reason],
            _per_currency(totals[reason]),
            [entry(cid, n) for cid, n in listed[reason]],
            max(0, customers[reason] - FAILED_CUSTOMERS_SHOWN),
        )
        for reason, label in FAILURE_REASONS.items()
    ]
    return {
        "failed": groups,
        "failed_count": sum(counts.values()),
        "repeat_customers": [entry(cid, week[cid]) for cid in sorted(repeat, key=lambda cid: rank((cid, week[cid])))],
    }


@functools.cache
def _invoice_totals_read() -> sa.CompoundSelect:
    # rollup_open_invoices: a row per (currency, UTC due day) of open invoices (migration 0010).
    # Days before today are wholly overdue; today's are overdue only once their moment passed,
    # which the index on (status, due_date) answers for that one day.
    o, i = RollupOpenInvoices, StripeInvoice
    today, now = sa.bindparam("today", type_=sa.Integer), sa.bindparam("now", type_=sa.Integer)
    past = sa.and_(col(o.due_day) > NO_DUE_DAY, col(o.due_day) < today)
    by_day = sa.select(
        col(o.currency),
        sa.func.sum(o.invoices),
        sa.func.sum(o.amount_remaining),
        sa.func.sum(sa.case((past, o.invoices), else_=0)),
        sa.func.sum(sa.case((past, o.amount_remaining), else_=0)),
    ).group_by(col(o.currency))
    due_earlier_today: AnyRead = (  # already counted open, with what they owe: only overdue now
        sa.select(
            col(i.currency),
            sa.literal_column("0").label("invoices"),
            sa.literal_column("0").label("owed"),
            sa.func.count(),
            sa.func.sum(i.amount_remaining),
        )
        .where(
            col(i.status) == "open",
            col(i.due_date) >= today * DAY,
            col(i.due_date) < now,
            col(i.deleted).is_(False),
        )
        .group_by(col(i.currency))
    )
    return sa.union_all(by_day, due_earlier_today)


def _invoice_totals(session: Session, now: int) -> list[InvoiceTotals]:
    found: dict[str, list[int]] = {}  # currency → [open, owed, overdue, overdue owed]
    for cur, *adds in session.connection().execute(_invoice_totals_read(), {"today": now // DAY, "now": now}):
        totals = found.setdefault(cur, [0, 0, 0, 0])
        for k, add in enumerate(adds):
            totals[k] += int(add or 0)
    out = [
        InvoiceTotals(
            cur,
            n,
            Money.of(owed, cur),
            od_n,
            Money.of(od_owed, cur),
            n - od_n,
            Money.of(owed - od_owed, cur),
        )
        for cur, (n, owed, od_n, od_owed) in found.items()
        if n
    ]
    return sorted(out, key=lambda t: (-t.open.amount, t.currency))


@functools.cache
def _recent_refunds_read() -> AnyRead:
    r, c = StripeRefund, StripeCharge
    # ix_stripe_refund_created_id, newest first; the charge by primary key for its customer.
    return (
        sa.select(
            col(r.id),
            col(r.charge_id),
            col(r.amount),
            col(r.currency),
            col(r.status),
            col(r.reason),
            col(r.created),
            col(c.customer_id),
        )
        .outerjoin(c, col(c.id) == col(r.charge_id))
        .where(col(r.deleted).is_(False))
        .order_by(col(r.created).desc(), col(r.id).desc())
        .limit(RECENT_REFUNDS)
    )


def _recent_refunds(session: Session) -> list[RecentRefund]:
    rows = session.connection().execute(_recent_refunds_read()).all()
    known = customer_refs(session, (row[-1] for row in rows))
    return [
        RecentRefund(
            refund_id,
            charge_id or "",
            _customer_ref(known, customer_id),
            Money.of(amount, currency),
            status or "",
            reason or "",
            created,
        )
        for refund_id, charge_id, amount, currency, status, reason, created, customer_id in rows
    ]


# --- lists: filters, sorting, keyset pages --------------------------------------------------

T = TypeVar("T")
R = TypeVar("R")


# A list's total is counted up to here; past it the page says "10,000+". Counting every match
# of a million-row filter would cost more than the page itself, and nobody pages that far.
COUNT_CAP = 10_000
# A total is counted in two goes. With the page, for at most PAGE_COUNT_BUDGET_MS: most filters
# count in a millisecond or two and the page comes with its total. A count that would take
# longer is left out of the page (its rows are what the person waits for) and asked for on its
# own (`count_charges` and the like, `late_totals`) for at most LATE_COUNT_BUDGET_MS, after the
# rows are painted. At a million charges that gives "refunded" or "EUR 100–500" a total (about
# 100 ms to count) that a 15 ms budget inside the page never could, and no page waits for it.
PAGE_COUNT_BUDGET_MS = 3
LATE_COUNT_BUDGET_MS = 300


@dataclass(frozen=True)
class ListTotal:
    """How many rows match a list's filters: exact up to `COUNT_CAP`, else a floor."""

    count: int
    at_least: bool = False  # True: `count` is COUNT_CAP and there are more

    @property
    def label(self) -> str:
        return f"{self.count:,}+" if self.at_least else f"{self.count:,}"


def count_matching(stmt: Any, budget_ms: int | None = None) -> ListTotal | None:
    """The capped count of a filtered (not yet ordered or limited) query, or None when counting
    would cost more than `budget_ms` (by default a page's, PAGE_COUNT_BUDGET_MS): the page then
    shows its rows without a total rather than waiting for one. Read on a connection of its
    own (`db.read_within`), outside any transaction of the caller's."""
    budget_ms = PAGE_COUNT_BUDGET_MS if budget_ms is None else budget_ms
    bounded = (
        stmt.with_only_columns(sa.literal(1), maintain_column_froms=True).order_by(None).limit(COUNT_CAP + 1).subquery()
    )
    try:
        found = int(read_within(sa.select(sa.func.count()).select_from(bounded), budget_ms)[0][0])
    except QueryOverBudget:
        return None
    return ListTotal(COUNT_CAP, at_least=True) if found > COUNT_CAP else ListTotal(found)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: this is the last page
    sort: str
    total: ListTotal | None = None  # None: not counted


def _check_sort(sort: str) -> tuple[str, bool]:
    if sort not in SORTS:
        raise ValidationFailed("Sort by newest, oldest, or amount (highest or lowest first).")
    return SORTS[sort]


def check_page_limit(limit: int, most: int = MAX_PAGE_SIZE) -> int:
    """A list page's size as asked: a whole number from 1 to `most` (the lists' own bound)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise ValidationFailed(f"A page holds 1 to {most} rows.")
    return limit


def encode_cursor(sort: str, key: int, obj_id: str) -> str:
    return f"{sort}:{key}:{obj_id}"


def _decode_cursor(cursor: str, sort: str) -> tuple[int, str]:
    parts = cursor.split(":", 2) if isinstance(cursor, str) and len(cursor) <= 300 else []
    if len(parts) != 3 or parts[0] != sort or not re.fullmatch(r"-?\d{1,19}", parts[1]) or not parts[2]:
        raise ValidationFailed("That page link is no longer valid; start from the first page.")
    return int(parts[1]), parts[2]


def _keyset(stmt: Any, key_col: Any, id_col: Any, descending: bool, sort: str, cursor: str | None, limit: int) -> Any:
    """Order by (key, id) and start after the cursor's row: a row-value comparison, which
    SQLite (3.15+) and PostgreSQL both answer from a (key, id) index range."""
    if cursor:
        key, obj_id = _decode_cursor(cursor, sort)
        after = sa.tuple_(key_col, id_col)
        stmt = stmt.where(after < (key, obj_id) if descending else after > (key, obj_id))
    order = (key_col.desc(), id_col.desc()) if descending else (key_col.asc(), id_col.asc())
    return stmt.order_by(*order).limit(limit + 1)


def _page_of(rows: list[Any], limit: int, sort: str, key: str) -> tuple[list[Any], str | None]:
    shown = rows[:limit]
    if len(rows) <= limit:
        return shown, None
    last = shown[-1]
    return shown, encode_cursor(sort, int(getattr(last, key)), last.id)


@dataclass(frozen=True)
class ListQuery(Generic[T]):
    """A list's filtered query without its page: what a page of the list and an export (which
    walks every page) both read, so the two can never disagree about what matches."""

    stmt: Any  # filtered, not yet ordered or limited
    key_col: Any  # the sort key's column; the id column breaks ties
    id_col: Any
    key: str  # the sort key's attribute on a row
    descending: bool
    sort: str
    items: Callable[[Session, list[Any]], list[T]]  # a page's rows → the list's rows (may read more)


def _shared_page(kind: str, filters: Hashable, query: ListQuery[T], cursor: str | None, limit: int) -> Page[T]:
    """A page of one of the lists (`kind`) under `filters` (checked: `query` is built from them),
    read once for every tab asking (`shared_pages`), its total kept per list and filters
    (`late_totals`). The caller has authorized."""
    total_key = (kind, filters)
    return shared_pages.read(
        (*total_key, query.sort, cursor, limit), lambda: read_page(query, cursor, limit, total_key)
    )


def read_page(
    query: ListQuery[T], cursor: str | None, limit: int, total_key: Hashable | None = None, *, counted: bool = True
) -> Page[T]:
    """One keyset page of `query` (the caller has authorized and checked `limit`); `total_key`
    names its filters for `late_totals` (None: the total is counted with the page, if it can be).
    `counted=False`: no total at all (a walk through every page has no use for one)."""
    stmt = _keyset(query.stmt, query.key_col, query.id_col, query.descending, query.sort, cursor, limit)
    total = late_totals.for_page(query.stmt, total_key) if counted else None
    with session_scope() as session:
        rows, next_cursor = _page_of(list(session.exec(stmt)), limit, query.sort, query.key)
        items = query.items(session, rows)
    return Page(items, next_cursor, query.sort, total() if total else None)


# Fifty open charges lists hear of the same store change and each re-read the same first page;
# under a burst of Stripe events that was fifty reads per change, competing with the webhook that
# applies the changes (bench/burst). A page is read once and handed to everyone who asks for the
# same one (filters, sort, cursor, size) while the store has not changed since the read began,
# and for at most SHARED_PAGE_SECONDS (conditions that move with time, such as "overdue").
SHARED_PAGE_SECONDS = 5.0
SHARED_PAGES_KEPT = 256


class SharedReads:
    """One read (of a list page, or of its total) for every caller asking for it at the same
    store generation (`notices.generation`), including callers arriving while it is being read.
    Each caller is authorized by its own service function before it gets here."""

    def __init__(self, window: float = SHARED_PAGE_SECONDS, kept: int = SHARED_PAGES_KEPT) -> None:
        self._window = window
        self._most = kept
        self._lock = threading.Lock()
        self._reads: OrderedDict[Hashable, tuple[int, datetime, Future[Any]]] = OrderedDict()

    def _current(self, kept: tuple[int, datetime, Future[Any]] | None) -> bool:
        """Whether a read began at the store generation the caller needs or later (the current
        one, or the one a live refresh heard of: `notices.wanted_generation`), less than the
        window ago by Billy's clock (a clock moved on or back reads anew)."""
        return bool(
            kept and kept[0] >= notices.wanted_generation() and 0 <= (_now() - kept[1]).total_seconds() < self._window
        )

    def read(self, key: Hashable, read: Callable[[], R]) -> R:
        with self._lock:
            kept = self._reads.get(key)
            mine = not self._current(kept)
            if mine:
                kept = (notices.generation(), _now(), Future())
                self._reads[key] = kept
                self._reads.move_to_end(key)
                while len(self._reads) > self._most:
                    self._reads.popitem(last=False)
        assert kept is not None
        future = kept[2]
        if mine:
            try:
                future.set_result(read())
            except BaseException as exc:  # noqa: BLE001 - handed to every caller waiting on it, then raised
                future.set_exception(exc)
                with self._lock:  # a failed read is not kept: the next caller tries again
                    if self._reads.get(key) is kept:
                        del self._reads[key]
        return future.result()

    def kept(self, key: Hashable) -> Any | None:
        """A finished read of `key` that `read` would hand over now, else None (never waits)."""
        with self._lock:
            kept = self._reads.get(key)
        if kept is None or not self._current(kept):
            return None
        future = kept[2]
        return future.result() if future.done() and future.exception() is None else None

    def forget(self) -> None:
        """Drop every kept read (a store swapped under the process: tests, a re-created instance)."""
        with self._lock:
            self._reads.clear()


shared_pages = SharedReads()
_kept_dashboard = SharedReads(window=DASHBOARD_CACHE_SECONDS, kept=1)


class LateTotals:
    """List totals, counted apart from the pages when they cost more than a page may spend.

    - `for_page`: the total a page comes with. One already counted for this store generation
      is handed over as it is; else a count within PAGE_COUNT_BUDGET_MS, unless that failed
      for the same filters within VERDICT_SECONDS (a live page re-read after every store change,
      or its next page, would fail it again: a cancelled count costs more than its budget).
    - `count`: the late count, within LATE_COUNT_BUDGET_MS, once per filters and store generation
      for every tab asking. Filters that cannot be counted even so are not tried again for
      VERDICT_SECONDS, so fifty open pages of them do not keep a core busy."""

    VERDICT_SECONDS = 60.0
    KEPT = 256

    def __init__(self) -> None:
        self._shared = SharedReads()
        self._lock = threading.Lock()
        # Filters whose count ran over a budget lately → when to try again.
        self._too_dear_for_page: OrderedDict[Hashable, float] = OrderedDict()
        self._uncountable: OrderedDict[Hashable, float] = OrderedDict()

    def _lately(self, verdicts: OrderedDict[Hashable, float], key: Hashable) -> bool:
        with self._lock:
            again_at = verdicts.get(key)
            return again_at is not None and again_at > time.monotonic()

    def _judge(self, verdicts: OrderedDict[Hashable, float], key: Hashable) -> None:
        with self._lock:
            verdicts[key] = time.monotonic() + self.VERDICT_SECONDS
            verdicts.move_to_end(key)
            while len(verdicts) > self.KEPT:
                verdicts.popitem(last=False)

    def for_page(self, stmt: Any, key: Hashable | None) -> Callable[[], ListTotal | None]:
        """The total a page of `stmt` (filtered, not yet ordered or limited) comes with, or None,
        started now and answered by the call returned: a page starts its count before reading
        its rows, so that it waits for the longer of the two, not for both one after the other
        (the count has its own connection, and neither holds the interpreter while the database
        works)."""
        if key is not None:
            counted = self._shared.kept(key)
            if counted is not None or self._lately(self._too_dear_for_page, key):
                return lambda: counted
        return _page_counts.submit(self._count_for_page, stmt, key).result

    def _count_for_page(self, stmt: Any, key: Hashable | None) -> ListTotal | None:
        total = count_matching(stmt)
        if total is None and key is not None:
            self._judge(self._too_dear_for_page, key)
        return total

    def count(self, key: Hashable, stmt: Any) -> ListTotal | None:
        """`stmt`'s capped count with the late budget, or None."""
        if self._lately(self._uncountable, key):
            return None

        def read() -> ListTotal | None:
            return count_matching(stmt, LATE_COUNT_BUDGET_MS)

        total = self._shared.read(key, read)
        if total is None:
            self._judge(self._uncountable, key)
        return total

    def forget(self) -> None:
        """Drop every kept total and verdict (a store swapped under the process: tests, benches)."""
        self._shared.forget()
        with self._lock:
            self._too_dear_for_page.clear()
            self._uncountable.clear()


late_totals = LateTotals()
# Where pages count their totals beside their reads: each count lasts at most PAGE_COUNT_BUDGET_MS.
PAGE_COUNT_THREADS = 4  # db.BUDGETED_POOL_SIZE keeps as many connections open for them


def _new_page_counts() -> None:
    """A pool of this process's own: a child forked after counts ran would inherit the pool's
    bookkeeping (idle workers) without its threads, and wait on them for ever."""
    global _page_counts
    _page_counts = ThreadPoolExecutor(max_workers=PAGE_COUNT_THREADS, thread_name_prefix="page-count")


_page_counts: ThreadPoolExecutor
_new_page_counts()
os.register_at_fork(after_in_child=_new_page_counts)


def walk(query: ListQuery[T], page_size: int = 1000) -> Iterator[T]:
    """Every row of `query`, one keyset page at a time: memory holds one page, each page is a
    short query of its own (no transaction held open while a slow reader takes the rows), and
    rows arriving meanwhile neither shift nor repeat the pages. The caller has authorized."""
    cursor: str | None = None
    while True:
        page = read_page(query, cursor, page_size, counted=False)  # an export counts nothing
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _check_choice(value: str, choices: Mapping[Any, str], what: str) -> str:
    if value and value not in choices:
        raise ValidationFailed(f"Choose a {what} from the list: {', '.join(choices.values())}.")
    return value


def _check_range(date_from: datetime | None, date_to: datetime | None) -> tuple[int | None, int | None]:
    since = _ts(date_from) if date_from is not None else None
    before = _ts(date_to) if date_to is not None else None
    if since is not None and before is not None and since >= before:
        raise ValidationFailed("The 'from' date is after the 'to' date: swap them or clear one.")
    return since, before


def _customer_condition(customer_col: Any, customer: str) -> sa.ColumnElement[bool] | None:
    """A customer by id (`cus_…`, exactly), or every customer whose email or name (any word)
    starts with the text (the prefix table of migrations 0022 and 0024)."""
    from services.search import customers_starting_with, plain_words  # (search imports us)

    text = plain_words(customer)
    if not text:
        return None
    if len(text) > MAX_TEXT:
        raise ValidationFailed(f"The customer filter is at most {MAX_TEXT} characters.")
    if text.startswith("cus_") and " " not in text:
        return customer_col == text
    return customers_starting_with(customer_col, text.lower())


# --- charges ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargeFilters:
    """Every field optional. Dates are aware datetimes: `date_from` included, `date_to` excluded.
    Amounts are minor units of the charge's own currency (pick `currency` to compare like with like)."""

    status: str = ""  # succeeded | failed | pending | refunded (anything refunded on it)
    reason: str = ""  # a FAILURE_REASONS key: failed charges of that group
    date_from: datetime | None = None
    date_to: datetime | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    currency: str = ""
    customer: str = ""  # cus_… or the start of an email or name


@dataclass(frozen=True)
class ChargeListRow:
    id: str
    customer: CustomerRef
    amount: Money
    refunded: Money
    status: str
    status_label: str
    reason: str  # FAILURE_REASONS key for a failed charge, else ""
    reason_label: str
    failure_message: str
    description: str
    card: str
    created: int


def charge_state_label(row: StripeCharge) -> str:
    """The words a charge's state badge shows (the charges list, and bench.burst comparing pages with Stripe)."""
    if row.status == "succeeded" and row.amount_refunded >= row.amount > 0:
        return "Refunded"
    if row.status == "succeeded" and row.amount_refunded:
        return f"Partly refunded ({format_money(row.amount_refunded, row.currency)})"
    return CHARGE_STATUSES.get(row.status, row.status.replace("_", " ").capitalize())


def search_charges(
    actor: Actor,
    filters: ChargeFilters | None = None,
    sort: str = "newest",
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> Page[ChargeListRow]:
    """Charges matching the filters, a page at a time.

    Indexes: newest/oldest walk ix_stripe_charge_created_walk (ix_stripe_charge_status_created
    with a status, ix_stripe_charge_customer_created for one customer); amount sorts walk
    ix_stripe_charge_amount_id."""
    audit.authorize_read(actor, "charges.search")
    limit = check_page_limit(limit)
    return _shared_page("charges", filters or ChargeFilters(), charges_query(filters, sort), cursor, limit)


def count_charges(actor: Actor, filters: ChargeFilters | None = None) -> ListTotal | None:
    """How many charges match: the total a page of them came without (see `LateTotals`)."""
    audit.authorize_read(actor, "charges.search")
    return late_totals.count(("charges", filters or ChargeFilters()), charges_query(filters).stmt)


# Anything refunded on it: the very words of ix_stripe_charge_refunded's WHERE (a literal, not a
# bound parameter, or SQLite will not use that index).
REFUNDED = sa.text("stripe_charge.amount_refunded > 0")


def charges_query(filters: ChargeFilters | None = None, sort: str = "newest") -> ListQuery[ChargeListRow]:
    """The charges list's query, filters checked (the caller authorizes)."""
    f = filters or ChargeFilters()
    key, descending = _check_sort(sort)
    _check_choice(f.status, CHARGE_STATUSES, "status")
    _check_choice(f.reason, FAILURE_REASONS, "failure reason")
    since, before = _check_range(f.date_from, f.date_to)
    for amount in (f.amount_min, f.amount_max):
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount < 0):
            raise ValidationFailed("Amounts must be zero or more.")
    if f.amount_min is not None and f.amount_max is not None and f.amount_min > f.amount_max:
        raise ValidationFailed("The lowest amount is above the highest: swap them or clear one.")
    currency = f.currency.lower()
    if currency and not is_currency_code(currency):
        raise ValidationFailed("A currency is a three-letter code like USD or EUR.")

    c = StripeCharge
    stmt = select(c).options(defer(orm_attribute(c.raw))).where(col(c.deleted).is_(False))  # rows need no raw JSON
    if f.status == "refunded":
        stmt = stmt.where(REFUNDED)
    elif f.status:
        stmt = stmt.where(col(c.status) == f.status)
    if f.reason:
        stmt = stmt.where(_reason_condition(f.reason))
    if since is not None:
        stmt = stmt.where(col(c.created) >= since)
    if before is not None:
        stmt = stmt.where(col(c.created) < before)
    # Sorted by date, an amount range is a filter on the walk of (created, id): "+ 0" keeps
    # SQLite's planner from ranging the amount index and sorting everything it finds.
    amount_col = col(c.amount) + 0 if key == "created" else col(c.amount)
    if f.amount_min is not None:
        stmt = stmt.where(amount_col >= f.amount_min)
    if f.amount_max is not None:
        stmt = stmt.where(amount_col <= f.amount_max)
    if currency:
        stmt = stmt.where(col(c.currency) == currency)
    who = _customer_condition(col(c.customer_id), f.customer)
    if who is not None:
        stmt = stmt.where(who)
    key_col = col(c.created) if key == "created" else col(c.amount)
    return ListQuery(stmt, key_col, col(c.id), key, descending, sort, _charge_items)


def _charge_items(session: Session, rows: list[StripeCharge]) -> list[ChargeListRow]:
    known = customer_refs(session, (r.customer_id for r in rows))
    items = []
    for r in rows:
        reason = failure_reason(r.decline_reason, r.outcome_type) if r.status == "failed" else None
        card = f"{(r.card_brand or 'card').title()} •••• {r.card_last4}" if r.card_last4 else ""
        items.append(
            ChargeListRow(
                id=r.id,
                customer=_customer_ref(known, r.customer_id),
                amount=Money.of(r.amount, r.currency),
                refunded=Money.of(r.amount_refunded, r.currency),
                status=r.status,
                status_label=charge_state_label(r),
                reason=reason or "",
                reason_label=FAILURE_REASONS[reason] if reason else "",
                failure_message=r.failure_message or "",
                description=r.description or "",
                card=card,
                created=r.created,
            )
        )
    return items


# --- subscriptions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionFilters:
    status: str = ""  # a SUBSCRIPTION_STATUSES key
    customer: str = ""  # cus_… or the start of an email or name


@dataclass(frozen=True)
class SubscriptionListRow:
    id: str
    customer: CustomerRef
    status: str
    status_label: str
    mrr: Money  # per month
    counts_in_mrr: bool
    plan: str  # "Pro × 3, Support"
    current_period_end: int | None
    cancel_at_period_end: bool
    canceled_at: int | None
    created: int


def _plans(session: Session, subscription_ids: list[str]) -> dict[str, str]:
    """A short description of each subscription's items, in one query
    (ix_stripe_subscription_item_subscription_id, products by primary key)."""
    if not subscription_ids:
        return {}
    item, product = StripeSubscriptionItem, StripeProduct
    rows = session.execute(
        sa.select(col(item.subscription_id), col(item.quantity), col(item.price_id), col(item.raw), col(product.name))
        .outerjoin(product, col(product.id) == col(item.product_id))
        .where(col(item.subscription_id).in_(subscription_ids))
        .order_by(col(item.id))
    )
    parts: dict[str, list[str]] = defaultdict(list)
    for subscription_id, quantity, price_id, raw, product_name in rows:
        name = product_name or (raw or {}).get("price", {}).get("nickname") or price_id or "Item"
        parts[subscription_id].append(f"{name} × {quantity}" if quantity != 1 else name)
    return {sid: ", ".join(p) for sid, p in parts.items()}


def search_subscriptions(
    actor: Actor,
    filters: SubscriptionFilters | None = None,
    sort: str = "newest",
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> Page[SubscriptionListRow]:
    """Subscriptions matching the filters, a page at a time; "amount" sorts by MRR.

    Indexes: ix_stripe_subscription_created_id, ix_stripe_subscription_status_created with a
    status, ix_stripe_subscription_customer_created for one customer, ix_stripe_subscription_mrr_id
    for the amount sorts."""
    audit.authorize_read(actor, "subscriptions.search")
    limit = check_page_limit(limit)
    return _shared_page(
        "subscriptions", filters or SubscriptionFilters(), subscriptions_query(filters, sort), cursor, limit
    )


def count_subscriptions(actor: Actor, filters: SubscriptionFilters | None = None) -> ListTotal | None:
    """How many subscriptions match: the total a page of them came without (see `LateTotals`)."""
    audit.authorize_read(actor, "subscriptions.search")
    return late_totals.count(("subscriptions", filters or SubscriptionFilters()), subscriptions_query(filters).stmt)


def subscriptions_query(
    filters: SubscriptionFilters | None = None, sort: str = "newest"
) -> ListQuery[SubscriptionListRow]:
    """The subscriptions list's query, filters checked (the caller authorizes)."""
    f = filters or SubscriptionFilters()
    key, descending = _check_sort(sort)
    _check_choice(f.status, SUBSCRIPTION_STATUSES, "status")
    s = StripeSubscription
    stmt = select(s).options(defer(orm_attribute(s.raw))).where(col(s.deleted).is_(False))  # rows need no raw JSON
    if f.status:
        stmt = stmt.where(col(s.status) == f.status)
    who = _customer_condition(col(s.customer_id), f.customer)
    if who is not None:
        stmt = stmt.where(who)
    key_col = col(s.created) if key == "created" else col(s.mrr)
    row_key = "created" if key == "created" else "mrr"
    return ListQuery(stmt, key_col, col(s.id), row_key, descending, sort, _subscription_items)


def _subscription_items(session: Session, rows: list[StripeSubscription]) -> list[SubscriptionListRow]:
    known = customer_refs(session, (r.customer_id for r in rows))
    plans = _plans(session, [r.id for r in rows])
    return [
        SubscriptionListRow(
            id=r.id,
            customer=_customer_ref(known, r.customer_id),
            status=r.status,
            status_label=SUBSCRIPTION_STATUSES.get(r.status, r.status.replace("_", " ").capitalize()),
            mrr=Money.of(r.mrr, r.currency),
            counts_in_mrr=r.status in MRR_STATUSES,
            plan=plans.get(r.id, ""),
            current_period_end=r.current_period_end,
            cancel_at_period_end=r.cancel_at_period_end,
            canceled_at=r.canceled_at,
            created=r.created,
        )
        for r in rows
    ]


# --- invoices ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceFilters:
    status: str = ""  # an INVOICE_STATUSES key; "overdue" = open and past its due date
    date_from: datetime | None = None  # created, included
    date_to: datetime | None = None  # created, excluded
    customer: str = ""  # cus_… or the start of an email or name


@dataclass(frozen=True)
class InvoiceListRow:
    id: str
    number: str
    customer: CustomerRef
    status: str  # Stripe's status, or "overdue"
    status_label: str
    total: Money
    remaining: Money
    due_date: int | None
    overdue: bool
    created: int


def search_invoices(
    actor: Actor,
    filters: InvoiceFilters | None = None,
    sort: str = "newest",
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> Page[InvoiceListRow]:
    """Invoices matching the filters, a page at a time; "amount" sorts by total.

    Indexes: ix_stripe_invoice_created_id, ix_stripe_invoice_status_created with a status
    (overdue too, then due_date is checked per row), ix_stripe_invoice_customer_created for one
    customer, ix_stripe_invoice_total_id for the amount sorts."""
    audit.authorize_read(actor, "invoices.search")
    limit = check_page_limit(limit)
    return _shared_page("invoices", filters or InvoiceFilters(), invoices_query(filters, sort), cursor, limit)


def count_invoices(actor: Actor, filters: InvoiceFilters | None = None) -> ListTotal | None:
    """How many invoices match: the total a page of them came without (see `LateTotals`)."""
    audit.authorize_read(actor, "invoices.search")
    return late_totals.count(("invoices", filters or InvoiceFilters()), invoices_query(filters).stmt)


def invoices_query(filters: InvoiceFilters | None = None, sort: str = "newest") -> ListQuery[InvoiceListRow]:
    """The invoices list's query, filters checked (the caller authorizes). "Overdue" is judged
    at the moment the query is made, for every page read from it."""
    f = filters or InvoiceFilters()
    key, descending = _check_sort(sort)
    _check_choice(f.status, INVOICE_STATUSES, "status")
    since, before = _check_range(f.date_from, f.date_to)
    at = _ts(_now())
    i = StripeInvoice
    stmt = select(i).options(defer(orm_attribute(i.raw))).where(col(i.deleted).is_(False))  # rows need no raw JSON
    if f.status == "overdue":
        # "+ 0": walk open invoices in the page's order and test the due date, rather than
        # range the due dates and sort them all (SQLite's planner prefers the latter).
        stmt = stmt.where(col(i.status) == "open", col(i.due_date).is_not(None), col(i.due_date) + 0 < at)
    elif f.status:
        stmt = stmt.where(col(i.status) == f.status)
    if since is not None:
        stmt = stmt.where(col(i.created) >= since)
    if before is not None:
        stmt = stmt.where(col(i.created) < before)
    who = _customer_condition(col(i.customer_id), f.customer)
    if who is not None:
        stmt = stmt.where(who)
    key_col = col(i.created) if key == "created" else col(i.total)
    row_key = "created" if key == "created" else "total"
    return ListQuery(stmt, key_col, col(i.id), row_key, descending, sort, functools.partial(_invoice_items, at=at))


def _invoice_items(session: Session, rows: list[StripeInvoice], *, at: int) -> list[InvoiceListRow]:
    known = customer_refs(session, (r.customer_id for r in rows))
    items = []
    for r in rows:
        overdue = r.status == "open" and r.due_date is not None and r.due_date < at
        status = "overdue" if overdue else (r.status or "")
        items.append(
            InvoiceListRow(
                id=r.id,
                number=r.number or "",
                customer=_customer_ref(known, r.customer_id, r.customer_email),
                status=status,
                status_label=INVOICE_STATUSES.get(status, status.replace("_", " ").capitalize()),
                total=Money.of(r.total, r.currency),
                remaining=Money.of(r.amount_remaining, r.currency),
                due_date=r.due_date,
                overdue=overdue,
                created=r.created,
            )
        )
    return items
