"""CSV exports of the lists (customers, charges, subscriptions, invoices) and of the dashboard's
failed-payments and overdue-invoices reports, with the list's filters applied (Pro and Business).

One writer serves every kind: a kind is its action, its filters, the list query it reuses
(`reports.*_query`, `billing.customers_query`, so an export and the page on screen can never
disagree about what matches) and its columns. `stream` walks the store a keyset page at a time
and yields CSV text in chunks, so a million charges never sit in memory.

Delivery: the page asks for a short-lived, single-use `ticket` bound to the member, their
sign-in, the kind and the filters; the browser then GETs `/api/exports/<kind>.csv?ticket=…`,
where the route `redeem`s it and streams. The filters travel signed (not encrypted) inside the
ticket; the store keeps only its token's hash (a `magic_link` row of purpose "export"), so a
ticket is spent once, atomically, even across workers.

Audit: one row per export, written when the stream ends, with the filters and the number of rows
written: `ok` at the end, `denied`/`failed` when refused or broken, and `failed` ("interrupted")
when the client goes away midway (the generator is closed). A refused or spent ticket is
recorded as `denied` under the kind's action.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import secrets
import typing
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import col, select

from services import audit, clock, identity, magic_links, reports
from services.billing import CustomerRow, customers_query
from services.db import session_scope
from services.errors import NotAuthenticated, NotFound, PermissionDenied, ValidationFailed
from services.failed_payments import check_period
from services.models import MagicLink, Member, utcnow
from services.money import exponent
from services.permissions import Actor, authorize, control
from services.reports import (
    ChargeFilters,
    ChargeListRow,
    InvoiceFilters,
    InvoiceListRow,
    ListQuery,
    SubscriptionFilters,
    SubscriptionListRow,
)
from services.signing import digest, instance_key

TICKET_PURPOSE = "export"  # magic_link.purpose of a download ticket
TICKET_LIFETIME = timedelta(seconds=120)  # from the click to the browser's GET: seconds, not minutes
PAGE_ROWS = 1000  # rows per keyset page read from the store
CHUNK_CHARS = 64 * 1024  # CSV text handed on at a time
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run a cell starting so
NO_EXPORT_ON_PLAN = "Exports come with the Pro and Business plans"


class TicketRefused(PermissionDenied):
    code = "export_ticket_refused"


# --- cells ----------------------------------------------------------------------------------------


def safe_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: text that would start a formula gets a leading '.
    Numbers we write ourselves (Decimal, int) are left alone, so "-12.00" stays a number."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def amount(minor: int, currency: str) -> Decimal:
    """Minor units as the decimal a person reads: 123456 USD → 1234.56, 1235 JPY → 1235."""
    digits = exponent(currency)
    return Decimal(minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def utc(seconds: int | None) -> str:
    """A Unix time as ISO 8601 UTC (``2026-03-18T12:00:00Z``); "" for none."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[object]], counter: list[int]) -> Iterator[str]:
    """The one CSV writer: the header, then every row (each cell guarded) in chunks of about
    CHUNK_CHARS. `counter[0]` counts the rows written so far (read by the caller's audit row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    yield out.getvalue()  # at once: the download starts before the first page is read
    out.seek(0)
    out.truncate()
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        counter[0] += 1
        if out.tell() >= CHUNK_CHARS:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    if out.tell():
        yield out.getvalue()


# --- what each kind is ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoFilters:
    """The dashboard's reports: their definition is their filter."""


@dataclass(frozen=True)
class CustomerFilters:
    query: str = ""  # the customers page's search: the start of an email or name


@dataclass(frozen=True)
class ExportKind:
    name: str  # in the URL and the file name: /api/exports/<name>.csv
    action: str
    filters_type: type[Any]
    sorts: bool  # whether the list's sort applies (else newest first)
    query: Callable[[Any, str], ListQuery[Any]]  # (filters, sort) → the list's query
    columns: tuple[tuple[str, Callable[[Any], object]], ...]
    # `authorize(actor, "<action>")`, written out per action so a reader (and the permission
    # matrix test) finds every action's check by its name.
    authorize: Callable[[Actor], None]


def _customer_columns(prefix: str = "Customer ") -> tuple[tuple[str, Callable[[Any], object]], ...]:
    return (
        (f"{prefix}ID", lambda r: r.customer.id),
        (f"{prefix}name", lambda r: r.customer.name),
        (f"{prefix}email", lambda r: r.customer.email),
    )


_CHARGE_COLUMNS: tuple[tuple[str, Callable[[ChargeListRow], object]], ...] = (
    ("Charge ID", lambda r: r.id),
    ("Created (UTC)", lambda r: utc(r.created)),
    *_customer_columns(),
    ("Description", lambda r: r.description),
    ("Card", lambda r: r.card),
    ("Amount", lambda r: amount(r.amount.amount, r.amount.currency)),
    ("Refunded", lambda r: amount(r.refunded.amount, r.refunded.currency)),
    ("Currency", lambda r: r.amount.currency.upper()),
    ("Status", lambda r: r.status_label),
    ("Failure reason", lambda r: r.reason_label),
    ("Failure message", lambda r: r.failure_message),
)
_SUBSCRIPTION_COLUMNS: tuple[tuple[str, Callable[[SubscriptionListRow], object]], ...] = (
    ("Subscription ID", lambda r: r.id),
    ("Created (UTC)", lambda r: utc(r.created)),
    *_customer_columns(),
    ("Status", lambda r: r.status_label),
    ("Plan", lambda r: r.plan),
    ("MRR", lambda r: amount(r.mrr.amount, r.mrr.currency)),
    ("Currency", lambda r: r.mrr.currency.upper()),
    ("Counts in MRR", lambda r: yes_no(r.counts_in_mrr)),
    ("Current period ends (UTC)", lambda r: utc(r.current_period_end)),
    ("Cancels at period end", lambda r: yes_no(r.cancel_at_period_end)),
    ("Canceled at (UTC)", lambda r: utc(r.canceled_at)),
)
_INVOICE_COLUMNS: tuple[tuple[str, Callable[[InvoiceListRow], object]], ...] = (
    ("Invoice ID", lambda r: r.id),
    ("Number", lambda r: r.number),
    ("Created (UTC)", lambda r: utc(r.created)),
    *_customer_columns(),
    ("Status", lambda r: r.status_label),
    ("Total", lambda r: amount(r.total.amount, r.total.currency)),
    ("Amount remaining", lambda r: amount(r.remaining.amount, r.remaining.currency)),
    ("Currency", lambda r: r.total.currency.upper()),
    ("Due (UTC)", lambda r: utc(r.due_date)),
    ("Overdue", lambda r: yes_no(r.overdue)),
)
_CUSTOMER_COLUMNS: tuple[tuple[str, Callable[[CustomerRow], object]], ...] = (
    ("Customer ID", lambda r: r.id),
    ("Name", lambda r: r.name),
    ("Email", lambda r: r.email),
    ("Created (UTC)", lambda r: utc(r.created)),
)


def _failed_payments(_: NoFilters, sort: str) -> ListQuery[ChargeListRow]:
    """The dashboard's "failed payments, last 7 days": failed charges of the rolling week."""
    since = clock.now() - timedelta(days=reports.FAILED_WINDOW_DAYS)
    return reports.charges_query(ChargeFilters(status="failed", date_from=since), sort)


def _overdue_invoices(_: NoFilters, sort: str) -> ListQuery[InvoiceListRow]:
    """The dashboard's overdue invoices: open and past their due date, at this moment."""
    return reports.invoices_query(InvoiceFilters(status="overdue"), sort)


@dataclass(frozen=True)
class PeriodFilters:
    """The failed-payments page's period (services/failed_payments.py): aware datetimes, `date_from`
    included, `date_to` excluded."""

    date_from: datetime | None = None
    date_to: datetime | None = None


def _failed_payments_in_period(f: PeriodFilters, sort: str) -> ListQuery[ChargeListRow]:
    """The failed charges of the report's chosen period, its bounds checked as the report checks them."""
    check_period(f.date_from, f.date_to)
    return reports.charges_query(ChargeFilters(status="failed", date_from=f.date_from, date_to=f.date_to), sort)


KINDS: dict[str, ExportKind] = {
    kind.name: kind
    for kind in (
        ExportKind(
            "customers",
            "customers.export",
            CustomerFilters,
            False,
            lambda f, _sort: customers_query(f.query),
            _CUSTOMER_COLUMNS,
            lambda actor: authorize(actor, "customers.export"),
        ),
        ExportKind(
            "charges",
            "charges.export",
            ChargeFilters,
            True,
            reports.charges_query,
            _CHARGE_COLUMNS,
            lambda actor: authorize(actor, "charges.export"),
        ),
        ExportKind(
            "subscriptions",
            "subscriptions.export",
            SubscriptionFilters,
            True,
            reports.subscriptions_query,
            _SUBSCRIPTION_COLUMNS,
            lambda actor: authorize(actor, "subscriptions.export"),
        ),
        ExportKind(
            "invoices",
            "invoices.export",
            InvoiceFilters,
            True,
            reports.invoices_query,
            _INVOICE_COLUMNS,
            lambda actor: authorize(actor, "invoices.export"),
        ),
        ExportKind(
            "failed-payments",
            "reports.export",
            NoFilters,
            False,
            _failed_payments,
            _CHARGE_COLUMNS,
            lambda actor: authorize(actor, "reports.export"),
        ),
        ExportKind(
            "overdue-invoices",
            "reports.export",
            NoFilters,
            False,
            _overdue_invoices,
            _INVOICE_COLUMNS,
            lambda actor: authorize(actor, "reports.export"),
        ),
        ExportKind(
            "failed-payments-period",
            "reports.export",
            PeriodFilters,
            False,
            _failed_payments_in_period,
            _CHARGE_COLUMNS,
            lambda actor: authorize(actor, "reports.export"),
        ),
    )
}


def kind_of(name: str) -> ExportKind:
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise NotFound("There is no such export.")
    return kind


def _checked(kind: ExportKind, filters: object | None, sort: str) -> tuple[Any, str]:
    if filters is None:
        filters = kind.filters_type()
    if not isinstance(filters, kind.filters_type):
        raise ValidationFailed("Those filters are not ones this list understands.")
    if not kind.sorts:
        sort = "newest"
    if sort not in reports.SORTS:
        raise ValidationFailed("Sort by newest, oldest, or amount (highest or lowest first).")
    return filters, sort


# --- filters to and from a ticket, and for the audit row -------------------------------------------


def _encode(filters: object) -> dict[str, Any]:
    """A filters dataclass as JSON values (aware datetimes as ISO UTC)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(filters):  # type: ignore[arg-type]
        value = getattr(filters, f.name)
        out[f.name] = value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
    return out


def _decode(kind: ExportKind, data: object) -> Any:
    """`_encode`'s output back into the kind's filters (the ticket was signed, so it is ours)."""
    if not isinstance(data, dict):
        raise ValidationFailed("Those filters are not ones this list understands.")
    hints = typing.get_type_hints(kind.filters_type)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(kind.filters_type):
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, str) and "datetime" in str(hints.get(f.name)):
            value = datetime.fromisoformat(value)
        values[f.name] = value
    return kind.filters_type(**values)


def describe(filters: object) -> dict[str, Any]:
    """The filters in force, for the audit row: only those set. A customer filter typed as text
    (an email or a name) is not copied, only that there was one: audit rows refer to Stripe
    customers by id only, so customer data can be erased from the store without touching the log."""
    out = {}
    for name, value in _encode(filters).items():
        if value in ("", None):
            continue
        if name in ("customer", "query") and not (isinstance(value, str) and value.startswith("cus_")):
            value = "(text)"
        out[name] = value
    return out


# --- tickets ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportOrder:
    """What a redeemed ticket asks for."""

    kind: str
    filters: Any
    sort: str


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(instance_key(), salt="billy:export-ticket")


def issue_ticket(actor: Actor, kind_name: str, filters: object | None = None, sort: str = "newest") -> str:
    """A single-use download ticket for this member's sign-in, this kind and these filters, valid
    for TICKET_LIFETIME. Authorized now (so a refusal shows on the page, and is audited) and again
    when the download starts; the filters are checked now, so a bad one is said at once."""
    kind = kind_of(kind_name)
    with audit.refusal_recorded(actor, kind.action):
        kind.authorize(_as_stored(actor))
    filters, sort = _checked(kind, filters, sort)
    kind.query(filters, sort)  # checks the filters (the query is made again at download)
    if actor.user_id is None:
        raise PermissionDenied("Exports are downloaded by a signed-in member.")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with session_scope() as session:
        session.add(
            MagicLink(
                purpose=TICKET_PURPOSE,
                token_hash=digest(token),
                email=actor.email,
                role=kind.name,
                created_by=actor.user_id,
                created_at=now,
                expires_at=now + TICKET_LIFETIME,
            )
        )
    payload = {"t": token, "m": actor.user_id, "s": actor.session_family, "k": kind.name}
    return _serializer().dumps({**payload, "f": _encode(filters), "o": sort})


def download_url(kind_name: str, ticket: str) -> str:
    return f"/api/exports/{kind_of(kind_name).name}.csv?ticket={ticket}"


def redeem(actor: Actor, kind_name: str, ticket: str) -> ExportOrder:
    """Spend a ticket: it must be ours (signed), for this kind, this member and this sign-in,
    unexpired and unspent. Of two racing uses only one succeeds. A refusal is audited as denied."""
    kind = kind_of(kind_name)
    with audit.refusal_recorded(actor, kind.action):
        payload = _spend(actor, kind, ticket)
    filters = _decode(kind, payload.get("f"))
    sort = payload.get("o")
    return ExportOrder(kind.name, filters, sort if isinstance(sort, str) else "newest")


def _spend(actor: Actor, kind: ExportKind, ticket: str) -> dict[str, Any]:
    try:
        payload = _serializer().loads(ticket) if isinstance(ticket, str) and len(ticket) <= 4000 else None
    except BadSignature:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("t"), str):
        raise TicketRefused("This download link is not valid. Use the Export button again.")
    if payload.get("k") != kind.name:
        raise TicketRefused("This download link is for another export. Use the Export button again.")
    if payload.get("m") != actor.user_id or payload.get("s") != actor.session_family:
        raise TicketRefused("This download link was made for another sign-in. Use the Export button again.")
    now = utcnow()
    with session_scope() as session:
        row = session.exec(
            select(MagicLink).where(
                col(MagicLink.token_hash) == digest(payload["t"]), col(MagicLink.purpose) == TICKET_PURPOSE
            )
        ).first()
        if row is None or row.created_by != actor.user_id or row.role != kind.name:
            raise TicketRefused("This download link is not valid. Use the Export button again.")
        if row.used_at is not None:
            raise TicketRefused("This download link was already used. Use the Export button again.")
        if row.expires_at <= now:
            raise TicketRefused("This download link has expired. Use the Export button again.")
        if not magic_links.mark_used(session, row.id, now):
            raise TicketRefused("This download link was already used. Use the Export button again.")
    return payload


# --- the export itself ---------------------------------------------------------------------------------


def _as_stored(actor: Actor) -> Actor:
    """The member as the store has them at this moment (role, plan, trial), so a role or plan
    changed since the Actor was built (a ticket issued a minute ago) is what is checked. An agent
    token acting keeps its id and scope: the export is checked and audited as that token."""
    if actor.user_id is None:
        return actor
    now = utcnow()
    with session_scope() as session:
        member = session.get(Member, actor.user_id)
        if member is None or not member.active:
            raise NotAuthenticated("Your access has changed. Please sign in again.")
        stored = identity.member_actor(
            session,
            member,
            actor.source,
            actor.client_address,
            actor.user_agent,
            session_family=actor.session_family,
            now=now,
        )
    return replace(stored, token_id=actor.token_id, token_client=actor.token_client, scope=actor.scope)


def stream(
    actor: Actor, kind_name: str, filters: object | None = None, sort: str = "newest"
) -> Generator[str, None, None]:
    """The export as CSV text chunks, walked from the store page by page (memory holds one page).

    A generator: the member is authorized (role and plan as stored now) when the first chunk is
    asked for, and the audit row is written when the stream ends: `ok` with the row count; `failed`
    with the rows so far when the reader stops early (`close()`, a client gone: "interrupted")
    or the walk breaks; `denied` when refused."""
    kind = kind_of(kind_name)
    actor = _as_stored(actor)
    with audit.audited(actor, kind.action) as draft:
        kind.authorize(actor)
        draft.details.update(kind=kind.name)
        filters, sort = _checked(kind, filters, sort)
        draft.details.update(filters=describe(filters), sort=sort)
        query = kind.query(filters, sort)
        header = [name for name, _ in kind.columns]
        cells = [cell for _, cell in kind.columns]
        rows = ([cell(r) for cell in cells] for r in reports.walk(query, PAGE_ROWS))
        counter = [0]
        try:
            for chunk in csv_chunks(header, rows, counter):
                draft.details["rows"] = counter[0]
                yield chunk
        except GeneratorExit:
            # `audited` lets GeneratorExit (not an Exception) pass unrecorded: say it here.
            draft.details.update(rows=counter[0], interrupted=True)
            audit.record(actor, kind.action, "failed", draft, f"Interrupted after {counter[0]:,} rows.")
            raise
        draft.details["rows"] = counter[0]


def filename(kind_name: str, at: datetime | None = None) -> str:
    moment = (at or utcnow()).astimezone(UTC)
    return f"billy-{kind_of(kind_name).name}-{moment:%Y%m%d-%H%M%S}.csv"


@dataclass(frozen=True)
class ExportButton:
    """How a page shows its Export button (the UI rule): hidden when the member's role can never
    export; shown disabled, with the reason, when a condition (the plan) blocks it for now."""

    shown: bool
    blocked: str  # why it is disabled ("" when it is not)


def button_for(actor: Actor) -> ExportButton:
    """Every export needs the same permission, so one answer serves every list (no audit row:
    this is asking, not exporting). `permissions.control` decides; the plan's refusal is shortened
    to the sentence a disabled button can carry."""
    state = control(actor, "charges.export")
    blocked = NO_EXPORT_ON_PLAN + "." if NO_EXPORT_ON_PLAN in state.blocked_by else state.blocked_by
    return ExportButton(state.shown, blocked)
