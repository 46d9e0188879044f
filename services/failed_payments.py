"""Failed payments of a chosen period, and emails asking those customers to update their card
(issue 12).

The report (`reports.failed_payments`, every role) groups the period's failed charges by the
dashboard's reasons (`services.reports.failure_reason`, imported so the two can never disagree):
expired card, insufficient funds, fraud block, other. Each group has its count, its totals per
currency (never one sum across currencies) and its customers with their failures; a customer
with two or more failures in the period, whatever the reason, is a *repeat* customer. Customers
without an email address are marked, since no update email can reach them.

Periods are presets (last 7 or 30 days, rolling up to this moment; this month and last month,
as calendar months) or whole days picked by the person, in the viewer's time zone (Billy
stores no organisation time zone yet, so pages pass the browser's, as every date filter does).
A period starts at `start` (included) and ends at `end` (excluded), is at most 366 days, and
its bounds are checked in plain words.

Payment-update emails (`payments.update_email`, Billing Manager and Owner): Billy drafts one per
customer from the store (name, the failed card's brand and last four digits, the failed amount
and, when Stripe has one for it, the open invoice's hosted payment page), the person may edit
the subject and body templates (`services.payment_update_mail`), and Billy's mailer sends each.
One audit row per recipient, naming the customer by id only. A customer without an email is
answered "not sent: no email on file"; one recipient's failure never stops the others. The
caller's idempotency key, derived per recipient, is claimed before each mail (`claim_intent`),
so a repeated submit sends nobody twice; a mail the server refused releases its claim, so the
same submit may try that recipient again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services import audit, clock, stripe_writes, timezones
from services.db import run_transaction, session_scope
from services.errors import BillyError, PermissionDenied, ValidationFailed
from services.mailer import MailDeliveryFailed, get_mailer
from services.models import IdempotencyRecord, Organization, StripeCharge, StripeCustomer, StripeInvoice
from services.payment_update_mail import (
    DEFAULT_BODY,
    DEFAULT_SUBJECT,
    MAX_BODY,
    MAX_SUBJECT,
    check_template,
    link_words,
    payment_update_mail,
    render,
)
from services.permissions import Actor, authorize
from services.reports import FAILURE_REASONS, CustomerRef, FailureReason, Money, customers_by_id, failure_reason

log = logging.getLogger(__name__)

PRESETS: dict[str, str] = {
    "last_7_days": "Last 7 days",
    "last_30_days": "Last 30 days",
    "this_month": "This month",
    "last_month": "Last month",
}
CUSTOM = "custom"
MAX_PERIOD_DAYS = 366
CUSTOMERS_SHOWN = 200  # per reason; the rest are counted
FAILURES_SHOWN = 20  # per customer and reason; the rest are counted
MAX_RECIPIENTS = 200  # customers per send (and per draft)
REPEAT_AT = 2  # failures in the period that make a repeat customer
NO_EMAIL = "no email on file"
_CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]{1,251}$")
_MAIL_NOT_DELIVERED = {  # for the audit row: the mailer's own sentence names the address
    True: "The mail server could not take the email right now (a temporary problem).",
    False: "The mail server refused the email (check the customer's address or Billy's mail settings).",
}


# --- periods ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A span of time as the report reads it: `start` included, `end` excluded, both UTC."""

    start: datetime
    end: datetime
    zone: str
    label: str


def check_period(start: object, end: object) -> tuple[int, int]:
    """The period as Unix seconds, refused in plain words when it cannot be a report's period."""
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise ValidationFailed("Pick the period's first and last day.")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed("The period's times must carry a time zone.")
    since, until = start.astimezone(UTC), end.astimezone(UTC)
    if until <= since:
        raise ValidationFailed("The period must end after it starts: pick a later last day or an earlier first day.")
    if until - since > timedelta(days=MAX_PERIOD_DAYS):
        raise ValidationFailed(f"A period can be at most {MAX_PERIOD_DAYS} days long: pick a shorter one.")
    return int(since.timestamp()), int(until.timestamp())


def _day_text(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def period_label(start: datetime, end: datetime, zone: str) -> str:
    """ "1 March 2026 – 31 March 2026 (Europe/Paris)": the days the period covers, in `zone`."""
    name = timezones.viewer_zone(zone)
    tz = ZoneInfo(name)
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    days = _day_text(first) if first == last else f"{_day_text(first)} – {_day_text(last)}"
    return f"{days} ({name})"


def _month_start(year: int, month: int, tz: ZoneInfo) -> datetime:
    return datetime(year, month, 1, tzinfo=tz)


def preset_period(preset: str, zone: str = "UTC") -> Period:
    """A preset period at this moment (`clock.now`), its calendar months in the viewer's zone."""
    if preset not in PRESETS:
        raise ValidationFailed(f"Choose a period from the list: {', '.join(PRESETS.values())}, or pick the days.")
    name = timezones.viewer_zone(zone)
    tz = ZoneInfo(name)
    now = clock.now()
    if preset in ("last_7_days", "last_30_days"):
        end = now.replace(microsecond=0) + timedelta(seconds=1)  # a charge made this second counts
        start = end - timedelta(days=7 if preset == "last_7_days" else 30)
    else:
        local = now.astimezone(tz)
        this_month = _month_start(local.year, local.month, tz)
        if preset == "this_month":
            start = this_month
            end = _month_start(local.year + local.month // 12, local.month % 12 + 1, tz)
        else:
            start = _month_start(local.year - (local.month == 1), (local.month - 2) % 12 + 1, tz)
            end = this_month
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    return Period(start, end, name, f"{PRESETS[preset]}: {period_label(start, end, name)}")


def custom_period(first_day: object, last_day: object, zone: str = "UTC") -> Period:
    """Whole days a person picked (`2026-03-01`, both included) in their time zone."""
    since, before = timezones.day_range(first_day, last_day, zone)
    if since is None or before is None:
        raise ValidationFailed("Pick both the period's first and last day.")
    check_period(since, before)
    name = timezones.viewer_zone(zone)
    return Period(since, before, name, period_label(since, before, name))


# --- the report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedCharge:
    id: str
    amount: Money
    created: int
    card: str  # "Visa •••• 0069", or "" when Stripe gave no card
    message: str  # Stripe's failure message


@dataclass(frozen=True)
class ReportCustomer:
    customer: CustomerRef
    count: int  # this reason's failures in the period
    totals: list[Money]  # this reason's failed amounts, per currency
    failures: list[FailedCharge]  # newest first, at most FAILURES_SHOWN
    period_failures: int  # failures in the period, every reason
    repeat: bool  # REPEAT_AT or more failures in the period

    @property
    def has_email(self) -> bool:
        return bool(self.customer.email)


@dataclass(frozen=True)
class ReportGroup:
    reason: FailureReason
    label: str
    count: int
    totals: list[Money]
    customers: list[ReportCustomer]  # most failures in the period first
    more_customers: int  # customers beyond those listed
    without_customer: int  # failed charges with no Stripe customer (counted, not listed)


@dataclass(frozen=True)
class FailedPaymentsReport:
    start: datetime
    end: datetime
    zone: str
    label: str
    groups: list[ReportGroup]  # always the four groups, in FAILURE_REASONS order
    count: int
    totals: list[Money]
    customers: int  # customers with a failure in the period
    repeat_customers: int
    customers_without_email: int


def _per_currency(totals: dict[str, int]) -> list[Money]:
    """Biggest first, then by code; one Money per currency (formatted by services.money)."""
    return [Money.of(v, c) for c, v in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]


def _card(brand: str | None, last4: str | None) -> str:
    return f"{(brand or 'card').title()} •••• {last4}" if last4 else ""


def _failed_in(since: int, until: int) -> list[Any]:
    """The period's failed, undeleted charges (ix_stripe_charge_failed covers the condition)."""
    c = StripeCharge
    return [
        col(c.status) == sa.literal_column("'failed'"),
        col(c.created) >= since,
        col(c.created) < until,
        col(c.deleted).is_(False),
    ]


def failed_payments_report(actor: Actor, start: datetime, end: datetime, zone: str = "UTC") -> FailedPaymentsReport:
    """The period's failed payments by reason, with their customers, from the store."""
    audit.authorize_read(actor, "reports.failed_payments")
    since, until = check_period(start, end)
    c = StripeCharge
    with session_scope() as session:
        rows = session.execute(
            sa.select(
                col(c.customer_id),
                col(c.decline_reason),
                col(c.outcome_type),
                col(c.currency),
                sa.func.count(),
                sa.func.sum(c.amount),
                sa.func.max(c.created),
            )
            .where(*_failed_in(since, until))
            .group_by(col(c.customer_id), col(c.decline_reason), col(c.outcome_type), col(c.currency))
        ).all()
        counts: dict[FailureReason, int] = defaultdict(int)
        totals: dict[FailureReason, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        customer_counts: dict[FailureReason, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        customer_totals: dict[tuple[FailureReason, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        unowned: dict[FailureReason, int] = defaultdict(int)
        everything: dict[str, int] = defaultdict(int)
        in_period: dict[str, int] = defaultdict(int)  # customer → failures, every reason
        newest: dict[str, int] = defaultdict(int)
        for customer_id, code, outcome_type, currency, n, amount, last in rows:
            reason = failure_reason(code, outcome_type)
            counts[reason] += int(n)
            totals[reason][currency] += int(amount or 0)
            everything[currency] += int(amount or 0)
            if not customer_id:
                unowned[reason] += int(n)
                continue
            customer_counts[reason][customer_id] += int(n)
            customer_totals[(reason, customer_id)][currency] += int(amount or 0)
            in_period[customer_id] += int(n)
            newest[customer_id] = max(newest[customer_id], int(last))

        def ranked(pairs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
            return sorted(pairs, key=lambda p: (-in_period[p[0]], -p[1], -newest[p[0]], p[0]))

        listed = {reason: ranked(customer_counts[reason].items()) for reason in FAILURE_REASONS}
        shown = {cid for pairs in listed.values() for cid, _ in pairs[:CUSTOMERS_SHOWN]}
        refs = customers_by_id(session, shown)
        details = _failures_of(session, shown, since, until)
        without_email = _customers_without_email(session, since, until)

    def entry(reason: FailureReason, customer_id: str, n: int) -> ReportCustomer:
        ref = refs.get(customer_id, (CustomerRef(customer_id, "", ""), False))[0]
        return ReportCustomer(
            customer=ref,
            count=n,
            totals=_per_currency(customer_totals[(reason, customer_id)]),
            failures=details.get((reason, customer_id), [])[:FAILURES_SHOWN],
            period_failures=in_period[customer_id],
            repeat=in_period[customer_id] >= REPEAT_AT,
        )

    groups = [
        ReportGroup(
            reason=reason,
            label=label,
            count=counts[reason],
            totals=_per_currency(totals[reason]),
            customers=[entry(reason, cid, n) for cid, n in listed[reason][:CUSTOMERS_SHOWN]],
            more_customers=max(0, len(listed[reason]) - CUSTOMERS_SHOWN),
            without_customer=unowned[reason],
        )
        for reason, label in FAILURE_REASONS.items()
    ]
    start_utc, end_utc = datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(until, UTC)
    name = timezones.viewer_zone(zone)
    return FailedPaymentsReport(
        start=start_utc,
        end=end_utc,
        zone=name,
        label=period_label(start_utc, end_utc, name),
        groups=groups,
        count=sum(counts.values()),
        totals=_per_currency(everything),
        customers=len(in_period),
        repeat_customers=sum(1 for n in in_period.values() if n >= REPEAT_AT),
        customers_without_email=without_email,
    )


def _customers_without_email(session: Session, since: int, until: int) -> int:
    """Customers with a failure in the period and no email address in the store (or no row yet)."""
    c, cu = StripeCharge, StripeCustomer
    no_email = sa.func.coalesce(sa.func.trim(col(cu.email)), "") == ""
    found = session.execute(
        sa.select(sa.func.count(sa.distinct(col(c.customer_id))))
        .select_from(c)
        .outerjoin(cu, col(cu.id) == col(c.customer_id))
        .where(*_failed_in(since, until), col(c.customer_id).is_not(None), no_email)
    ).scalar_one()
    return int(found or 0)


def _failures_of(
    session: Session, customer_ids: set[str], since: int, until: int
) -> dict[tuple[FailureReason, str], list[FailedCharge]]:
    """The listed customers' failed charges in the period, newest first, by (reason, customer)."""
    if not customer_ids:
        return {}
    c = StripeCharge
    rows = session.execute(
        sa.select(
            col(c.id),
            col(c.customer_id),
            col(c.amount),
            col(c.currency),
            col(c.created),
            col(c.decline_reason),
            col(c.outcome_type),
            col(c.card_brand),
            col(c.card_last4),
            col(c.failure_message),
        )
        .where(*_failed_in(since, until), col(c.customer_id).in_(sorted(customer_ids)))
        .order_by(col(c.created).desc(), col(c.id).desc())
    )
    found: dict[tuple[FailureReason, str], list[FailedCharge]] = defaultdict(list)
    for charge_id, customer_id, amount, currency, created, code, outcome_type, brand, last4, message in rows:
        found[(failure_reason(code, outcome_type), customer_id)].append(
            FailedCharge(charge_id, Money.of(amount, currency), int(created), _card(brand, last4), message or "")
        )
    return found


# --- payment-update emails -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recipient:
    """What Billy knows of one customer's newest failed payment in the period, from the store."""

    customer_id: str
    name: str
    email: str
    brand: str
    last4: str
    amount: Money
    link: str  # the open invoice's hosted payment page, or ""


@dataclass(frozen=True)
class PaymentUpdateDraft:
    """One customer's email as Billy pre-fills it, or why none can be sent to them."""

    customer_id: str
    name: str
    email: str  # "" when none is on file
    card: str  # "Visa •••• 0069"
    amount: str  # "$45.00"
    link: str  # the hosted invoice page, or ""
    subject: str  # the default subject, filled in
    body: str  # the default body, filled in
    problem: str  # "" when it can be sent; else why not ("no email on file")

    @property
    def sendable(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class SendResult:
    """What happened for one recipient."""

    customer_id: str
    sent: bool
    message: str  # "Sent to …", "Not sent: no email on file", "Already sent with this request…"
    replayed: bool = False  # the same request had already handled this recipient


def _checked_ids(customer_ids: object) -> list[str]:
    """The chosen customers: a list of `cus_…` ids, each once, in the order given."""
    if not isinstance(customer_ids, Sequence) or isinstance(customer_ids, str):
        raise ValidationFailed("Choose the customers to email.")
    if not customer_ids:
        raise ValidationFailed("Choose at least one customer to email.")
    if len(customer_ids) > MAX_RECIPIENTS:
        raise ValidationFailed(f"Email at most {MAX_RECIPIENTS} customers at a time: choose fewer.")
    if not all(isinstance(i, str) and _CUSTOMER_ID.match(i) for i in customer_ids):
        raise ValidationFailed("One of the chosen customers is not a Stripe customer id (they start with cus_).")
    return list(dict.fromkeys(customer_ids))


def _audit_targets(customer_ids: object) -> list[str]:
    """Ids to name on a refused batch's audit row: whatever strings were sent, bounded."""
    if not isinstance(customer_ids, Sequence) or isinstance(customer_ids, str):
        return []
    return [i[:255] for i in customer_ids[:MAX_RECIPIENTS] if isinstance(i, str) and i]


def _invoice_links(session: Session, customer_ids: list[str]) -> dict[str, str]:
    """Charge or payment-intent id → the hosted page of the open invoice it tried to pay. Stripe
    names an invoice's payments in `payments` (charge or payment intent); older API versions put
    the latest `charge` and `payment_intent` on the invoice itself: every shape is read."""
    i = StripeInvoice
    rows = session.exec(
        select(i.raw).where(col(i.customer_id).in_(customer_ids), col(i.status) == "open", col(i.deleted).is_(False))
    )
    links: dict[str, str] = {}
    for raw in rows:
        url = (raw or {}).get("hosted_invoice_url")
        if not isinstance(url, str) or not url.startswith("https://"):
            continue
        payments = ((raw.get("payments") or {}).get("data")) or []
        paid_with = [raw.get("charge"), raw.get("payment_intent")]
        for payment in payments:
            inner = (payment or {}).get("payment") or {}
            paid_with += [inner.get("charge"), inner.get("payment_intent")]
        for ref in paid_with:
            ref_id = ref.get("id") if isinstance(ref, dict) else ref
            if isinstance(ref_id, str) and ref_id:
                links[ref_id] = url
    return links


def _recipients(customer_ids: list[str], since: int, until: int) -> dict[str, _Recipient | str]:
    """Per chosen customer, their newest failed payment in the period, or why there is none."""
    c = StripeCharge
    with session_scope() as session:
        refs = customers_by_id(session, customer_ids)
        rows = session.execute(
            sa.select(
                col(c.id),
                col(c.customer_id),
                col(c.amount),
                col(c.currency),
                col(c.card_brand),
                col(c.card_last4),
                col(c.payment_intent_id),
                col(c.raw),
            )
            .where(*_failed_in(since, until), col(c.customer_id).in_(customer_ids))
            .order_by(col(c.created).desc(), col(c.id).desc())
        ).all()
        links = _invoice_links(session, customer_ids)
    newest: dict[str, Any] = {}
    link_of: dict[str, str] = {}
    for row in rows:
        charge_id, customer_id, _amount, _currency, _brand, _last4, intent_id, raw = row
        newest.setdefault(customer_id, row)
        invoice_id = (raw or {}).get("invoice")
        link = links.get(charge_id) or links.get(intent_id or "") or links.get(invoice_id or "")
        if link and customer_id not in link_of:
            link_of[customer_id] = link  # the newest failure that Stripe has a payment page for
    found: dict[str, _Recipient | str] = {}
    for customer_id in customer_ids:
        ref, deleted = refs.get(customer_id, (None, False))
        failed = newest.get(customer_id)
        if ref is None or deleted:
            found[customer_id] = "this customer is not in Billy's copy of Stripe (deleted, or not synced yet)"
        elif failed is None:
            found[customer_id] = "this customer has no failed payment in the chosen period"
        else:
            _, _, amount, currency, brand, last4, _, _ = failed
            found[customer_id] = _Recipient(
                customer_id=customer_id,
                name=ref.name,
                email=ref.email,
                brand=brand.title() if brand else "card",
                last4=last4 or "????",
                amount=Money.of(amount, currency),
                link=link_of.get(customer_id, ""),
            )
    return found


def _org_name() -> str:
    with session_scope() as session:
        org = session.get(Organization, 1)
        return org.name if org else "Our team"


def _values(recipient: _Recipient, org: str) -> dict[str, str]:
    """What each placeholder becomes for this customer."""
    return {
        "name": recipient.name or "there",
        "brand": recipient.brand,
        "last4": recipient.last4,
        "amount": recipient.amount.text,
        "link": link_words(recipient.link),
        "org": org,
    }


def draft_payment_update_emails(
    actor: Actor, customer_ids: list[str], start: datetime, end: datetime, zone: str = "UTC"
) -> list[PaymentUpdateDraft]:
    """The emails Billy would send the chosen customers, pre-filled from the store (nothing is sent)."""
    audit.authorize_read(actor, "payments.update_email")
    ids = _checked_ids(customer_ids)
    since, until = check_period(start, end)
    found = _recipients(ids, since, until)
    org = _org_name()
    drafts = []
    for customer_id in ids:
        recipient = found[customer_id]
        if isinstance(recipient, str):
            drafts.append(PaymentUpdateDraft(customer_id, customer_id, "", "", "", "", "", "", recipient))
            continue
        values = _values(recipient, org)
        drafts.append(
            PaymentUpdateDraft(
                customer_id=customer_id,
                name=recipient.name or customer_id,
                email=recipient.email,
                card=_card(recipient.brand, recipient.last4),
                amount=recipient.amount.text,
                link=recipient.link,
                subject=render(DEFAULT_SUBJECT, values),
                body=render(DEFAULT_BODY, values),
                problem="" if recipient.email else NO_EMAIL,
            )
        )
    return drafts


def _recipient_key(idempotency_key: str, customer_id: str) -> str:
    """The request's key made one per recipient (within IdempotencyRecord's 255 characters)."""
    return "pue_" + hashlib.sha256(f"{idempotency_key}:{customer_id}".encode()).hexdigest()


def _release(intent_key: str) -> None:
    """Forget a recipient's claim when the mail server refused the email, so a retry may send it."""

    def forget(session: Session) -> None:
        seen = session.get(IdempotencyRecord, intent_key)
        if seen is not None:
            session.delete(seen)

    run_transaction(forget)


def send_payment_update_emails(
    actor: Actor,
    customer_ids: list[str],
    subject: str,
    body_template: str,
    start: datetime,
    end: datetime,
    zone: str,
    idempotency_key: str,
) -> list[SendResult]:
    """Send each chosen customer the filled-in email; one result (and one audit row) each.

    Refused as a whole (one audit row naming the chosen customers) when the role may not send
    or an input is wrong: nothing is sent then. Otherwise every recipient is tried."""
    targets = _audit_targets(customer_ids)
    with audit.refusal_recorded(actor, "payments.update_email", *targets):
        authorize(actor, "payments.update_email")
    try:
        stripe_writes.require_idempotency_key(idempotency_key)
        ids = _checked_ids(customer_ids)
        subject_template = check_template(subject, "subject", MAX_SUBJECT, one_line=True)
        body = check_template(body_template, "body", MAX_BODY)
        since, until = check_period(start, end)
        timezones.viewer_zone(zone)
    except ValidationFailed as exc:
        draft = audit.AuditDraft(targets=targets, details={"recipients": len(targets)})
        audit.record(actor, "payments.update_email", "failed", draft, exc.message)
        raise
    found = _recipients(ids, since, until)
    org = _org_name()
    return [
        _send_one(actor, customer_id, found[customer_id], subject_template, body, org, idempotency_key)
        for customer_id in ids
    ]


def _send_one(
    actor: Actor,
    customer_id: str,
    recipient: _Recipient | str,
    subject: str,
    body: str,
    org: str,
    idempotency_key: str,
) -> SendResult:
    """One recipient: its own audit row (the customer by id only), its own outcome."""
    shown = ""  # the person's fuller sentence for a delivery failure (the audit row gets one without the address)
    try:
        with audit.audited(actor, "payments.update_email", customer_id) as draft:
            authorize(actor, "payments.update_email")
            if isinstance(recipient, str):
                raise ValidationFailed(recipient)
            draft.amount, draft.currency = recipient.amount.amount, recipient.amount.currency
            draft.details["link"] = bool(recipient.link)
            if not recipient.email:
                raise ValidationFailed(NO_EMAIL)
            intent_key = _recipient_key(idempotency_key, customer_id)
            if stripe_writes.claim_intent(actor, intent_key, "payments.update_email", customer_id):
                draft.details["replay"] = True
                return SendResult(
                    customer_id, False, "Already sent with this request, so not sent again.", replayed=True
                )
            values = _values(recipient, org)
            mail = payment_update_mail(
                to=recipient.email, subject=render(subject, values), body=render(body, values), org_name=org
            )
            try:
                get_mailer().send(mail)
            except MailDeliveryFailed as exc:
                _release(intent_key)
                shown = exc.message
                raise BillyError(_MAIL_NOT_DELIVERED[exc.retryable], code=exc.code) from None
    except PermissionDenied:
        raise  # the role changed mid-batch: stop, as the first refusal would have
    except BillyError as exc:
        return SendResult(customer_id, False, f"Not sent: {shown or exc.message}")
    except Exception:  # one recipient's failure never stops the rest; the audit row and the log carry it
        log.exception("Payment-update email to customer %s not sent", customer_id)
        return SendResult(customer_id, False, "Not sent: an internal error (logged).")
    return SendResult(customer_id, True, f"Sent to {recipient.email}.")
