"""Billing reads (from the synced store) and writes (to Stripe first, then the store).

Every function takes the calling `Actor` and authorizes it first, whichever edge called.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import defer
from sqlmodel import col, select

from services import audit, mirror, notices, spend, stripe_writes
from services.db import run_transaction, session_scope
from services.errors import BillyError, NotFound, PermissionDenied, StripeRequestFailed, ValidationFailed
from services.locks import named_lock
from services.mail_templates import refund_confirmation_mail
from services.mailer import MailDeliveryFailed, get_mailer
from services.models import IdempotencyRecord, Organization, StripeCharge, StripeCustomer, StripeRefund, orm_attribute
from services.money import format_money
from services.permissions import Actor, authorize
from services.reports import ListQuery, ListTotal, late_totals
from services.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)

PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
REFUND_REASONS: dict[str, str] = {
    "requested_by_customer": "Requested by customer",
    "duplicate": "Duplicate charge",
    "fraudulent": "Fraudulent",
}
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{16,255}$")
NOTE_MAX = 1000  # a person's note on a refund or a refund request
STRIPE_METADATA_VALUE_MAX = 500  # Stripe refuses longer metadata values


@dataclass(frozen=True)
class CustomerRow:
    id: str
    name: str
    email: str
    created: int


@dataclass(frozen=True)
class CustomerPage:
    items: list[CustomerRow]
    next_cursor: str | None
    total: ListTotal | None = None  # None: not counted


@dataclass(frozen=True)
class RefundRow:
    id: str
    amount: int
    currency: str
    status: str
    reason: str
    created: int


@dataclass(frozen=True)
class ChargeRow:
    id: str
    customer_id: str | None
    amount: int
    amount_refunded: int
    currency: str
    status: str
    description: str
    order_number: str
    card: str
    failure_code: str
    failure_message: str
    created: int
    refunds: list[RefundRow] = field(default_factory=list)

    @property
    def refundable(self) -> int:
        return self.amount - self.amount_refunded if self.status == "succeeded" else 0


@dataclass(frozen=True)
class CustomerDetail:
    customer: CustomerRow
    address: dict[str, Any]
    phone: str
    charges: list[ChargeRow]


def _encode_cursor(created: int, obj_id: str) -> str:
    return f"{created}:{obj_id}"


def _decode_cursor(cursor: str) -> tuple[int, str]:
    created, _, obj_id = cursor.partition(":")
    if not created.isdigit() or not obj_id:
        raise ValidationFailed("That page link is no longer valid; start from the first page.")
    return int(created), obj_id


def search_customers(actor: Actor, query: str = "", cursor: str | None = None, limit: int = PAGE_SIZE) -> CustomerPage:
    """Customers newest first, optionally those whose email or name (any word) starts with `query`.

    Keyset pagination on (created, id): each page costs the same however deep it is."""
    audit.authorize_read(actor, "customers.search")
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    stmt = _customers_matching(query)
    if cursor:
        created, obj_id = _decode_cursor(cursor)
        stmt = stmt.where(
            sa.or_(
                col(StripeCustomer.created) < created,
                sa.and_(col(StripeCustomer.created) == created, col(StripeCustomer.id) < obj_id),
            )
        )
    stmt = stmt.order_by(col(StripeCustomer.created).desc(), col(StripeCustomer.id).desc()).limit(limit + 1)
    total = late_totals.for_page(_customers_matching(query), ("customers", query))
    with session_scope() as session:
        rows = list(session.exec(stmt))
    items = [CustomerRow(r.id, r.name or "", r.email or "", r.created) for r in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1].created, rows[limit - 1].id) if len(rows) > limit else None
    return CustomerPage(items, next_cursor, total())


def count_customers(actor: Actor, query: str = "") -> ListTotal | None:
    """How many customers `search_customers` holds for `query`: the total a page of them came
    without (`reports.LateTotals`)."""
    audit.authorize_read(actor, "customers.search")
    return late_totals.count(("customers", query), _customers_matching(query))


def _customers_matching(query: str) -> Any:
    """Customers not deleted, and (with a query) whose email or name (any word) starts with it."""
    stmt = (
        select(StripeCustomer)
        .options(defer(orm_attribute(StripeCustomer.raw)))
        .where(col(StripeCustomer.deleted).is_(False))
    )
    from services.search import customers_starting_with, plain_words

    needle = plain_words(query).lower()
    if needle:
        stmt = stmt.where(customers_starting_with(col(StripeCustomer.id), needle))
    return stmt


def customers_query(query: str = "") -> ListQuery[CustomerRow]:
    """`search_customers`' list as a whole, newest first, for an export to walk (the caller authorizes)."""
    c = StripeCustomer
    return ListQuery(
        _customers_matching(query),
        col(c.created),
        col(c.id),
        "created",
        True,
        "newest",
        lambda _session, rows: [CustomerRow(r.id, r.name or "", r.email or "", r.created) for r in rows],
    )


def _charge_row(row: StripeCharge, refunds: list[StripeRefund]) -> ChargeRow:
    card = f"{(row.card_brand or 'card').title()} •••• {row.card_last4}" if row.card_last4 else ""
    return ChargeRow(
        id=row.id,
        customer_id=row.customer_id,
        amount=row.amount,
        amount_refunded=row.amount_refunded,
        currency=row.currency,
        status=row.status,
        description=row.description or "",
        order_number=row.order_number or "",
        card=card,
        failure_code=row.failure_code or "",
        failure_message=row.failure_message or "",
        created=row.created,
        refunds=[
            RefundRow(r.id, r.amount, r.currency, r.status or "", r.reason or "", r.created)
            for r in sorted(refunds, key=lambda r: r.created, reverse=True)
        ],
    )


def get_customer(actor: Actor, customer_id: str, charge_limit: int = MAX_PAGE_SIZE) -> CustomerDetail:
    audit.authorize_read(actor, "customers.view")
    with session_scope() as session:
        customer = session.get(StripeCustomer, customer_id)
        if customer is None:
            raise NotFound("No customer with that id has been synced from Stripe.")
        charges = list(
            session.exec(
                select(StripeCharge)
                .where(StripeCharge.customer_id == customer_id)
                .order_by(col(StripeCharge.created).desc(), col(StripeCharge.id).desc())
                .limit(charge_limit)
            )
        )
        refunds: dict[str, list[StripeRefund]] = defaultdict(list)
        if charges:
            for r in session.exec(select(StripeRefund).where(col(StripeRefund.charge_id).in_([c.id for c in charges]))):
                refunds[r.charge_id or ""].append(r)
    return CustomerDetail(
        customer=CustomerRow(customer.id, customer.name or "", customer.email or "", customer.created),
        address=dict(customer.raw.get("address") or {}),
        phone=customer.phone or "",
        charges=[_charge_row(c, refunds[c.id]) for c in charges],
    )


def get_charge(actor: Actor, charge_id: str) -> ChargeRow:
    audit.authorize_read(actor, "charges.view")
    with session_scope() as session:
        charge = session.get(StripeCharge, charge_id)
        if charge is None:
            raise NotFound("No charge with that id has been synced from Stripe.")
        refunds = list(session.exec(select(StripeRefund).where(StripeRefund.charge_id == charge_id)))
    return _charge_row(charge, refunds)


# --- refunds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundPreview:
    charge_id: str
    amount: int
    currency: str
    remaining_after: int
    summary: str  # one sentence: what will happen
    allowed: bool
    refusal: str
    customer_email: str = ""  # where a confirmation email would go ("" when there is nowhere)
    no_email_reason: str = ""  # why no confirmation email can be sent, when customer_email is ""
    # What is left of the daily refund budgets this refund counts against ("" when none applies).
    budget_left: str = ""


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    amount: int
    currency: str
    charge: ChargeRow
    replayed: bool
    emailed_to: str = ""  # the customer's address, when a confirmation email went out
    email_outcome: str = ""  # one sentence on the confirmation email; "" when none was asked for

    @property
    def email_sent(self) -> bool:
        return bool(self.emailed_to)


def _refund_amount(charge_amount: int, already_refunded: int, amount: int | None, currency: str) -> int:
    """The amount to refund, or a clear refusal. `None` means everything that remains."""
    remaining = charge_amount - already_refunded
    if remaining <= 0:
        raise ValidationFailed("This charge has already been refunded in full.")
    if amount is None:
        return remaining
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationFailed("The refund amount must be a whole number of cents.")
    if amount <= 0:
        raise ValidationFailed("Enter a refund amount greater than zero.")
    if amount > remaining:
        raise ValidationFailed(
            f"You can refund at most {format_money(remaining, currency)} on this charge "
            f"({format_money(already_refunded, currency)} of {format_money(charge_amount, currency)} "
            "is already refunded)."
        )
    return amount


def _check_reason(reason: str | None) -> str | None:
    if reason in (None, ""):
        return None
    if reason not in REFUND_REASONS:
        raise ValidationFailed("Choose a reason: requested by customer, duplicate charge or fraudulent.")
    return reason


def check_note(note: Any, *, required: str | None = None) -> str:
    """A person's explanation (of a refund, a request, a decision): printable text up to NOTE_MAX
    characters, required when `required` says what to write. Untrusted input of any type."""
    text = note if isinstance(note, str) else ""
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable()).strip()
    if required and not text:
        raise ValidationFailed(required)
    if len(text) > NOTE_MAX:
        raise ValidationFailed(f"Keep the note under {NOTE_MAX} characters (it has {len(text)}).")
    return text


def _customer_email(customer_id: str | None) -> tuple[str, str]:
    """(the customer's email from the store, "") or ("", why a confirmation cannot be sent)."""
    if not customer_id:
        return "", "This charge has no customer in Stripe, so there is no email address to send a confirmation to."
    with session_scope() as session:
        customer = session.get(StripeCustomer, customer_id)
    if customer is None:
        return "", "This charge's customer has not been synced from Stripe yet, so Billy has no email address for them."
    if customer.deleted:
        return "", "This charge's customer was deleted in Stripe, so there is no email address to send to."
    email = (customer.email or "").strip()
    if not email:
        return "", "The customer has no email address in Stripe, so no confirmation email can be sent."
    return email, ""


def preview_refund(actor: Actor, charge_id: str, amount: int | None) -> RefundPreview:
    """What a refund would do, from the store (the refund itself re-checks against Stripe)."""
    charge = get_charge(actor, charge_id)
    if charge.status != "succeeded":
        raise ValidationFailed("Only successful charges can be refunded.")
    refund = _refund_amount(charge.amount, charge.amount_refunded, amount, charge.currency)
    after = charge.amount - charge.amount_refunded - refund
    who = f"{charge.card} " if charge.card else ""
    state = "fully refunded" if after == 0 else f"partly refunded, {format_money(after, charge.currency)} left"
    summary = (
        f"Refund {format_money(refund, charge.currency)} of {format_money(charge.amount, charge.currency)} "
        f"to the customer's {who or 'card '}— the charge will be {state}. Banks usually take 5–10 business days."
    )
    budget_left = ""
    try:
        authorize(actor, "charges.refund", refund_total=charge.amount_refunded + refund, currency=charge.currency)
        standings = spend.check_budget(actor, refund, charge.currency)
        budget_left = "; ".join(s.words() for s in standings)
        allowed, refusal = True, ""
    except PermissionDenied as exc:
        allowed, refusal = False, exc.message
    email, no_email = _customer_email(charge.customer_id)
    return RefundPreview(
        charge_id, refund, charge.currency, after, summary, allowed, refusal, email, no_email, budget_left
    )


def charge_lock_key(charge_id: str) -> str:
    return f"billy:charge:{charge_id}"


def charge_lock(charge_id: str) -> AbstractContextManager[None]:
    """Refunds of one charge run one at a time, so two cannot race past a cap together: in
    this process and, on PostgreSQL, across workers (`services.locks`)."""
    return named_lock(charge_lock_key(charge_id))


def issue_refund(
    actor: Actor,
    charge_id: str,
    amount: int | None,
    reason: str | None,
    idempotency_key: str,
    gateway: StripeGateway | None = None,
    *,
    note: str = "",
    email_customer: bool = False,
) -> RefundResult:
    """Refund a charge in Stripe and show it in the store at once.

    `idempotency_key` identifies the user's one intent (one dialog, one API request):
    a repeat with the same key returns the first refund and never refunds twice (nor mails twice).
    `note` is kept in the audit row and on the refund in Stripe (metadata `billy_note`).
    `email_customer` sends the customer a confirmation once the refund is done, outside the lock
    and any transaction; a mail that cannot go is reported in the result, never undoes the refund.
    """
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "charges.refund", charge_id) as draft:
        authorize(actor, "charges.refund")
        if not _IDEMPOTENCY_KEY.match(idempotency_key or ""):
            raise ValidationFailed("A refund request needs an idempotency key of 16–255 letters, digits, - or _.")
        reason = _check_reason(reason)
        note = check_note(note)
        if note:
            draft.details["note"] = note
        with charge_lock(charge_id):
            replay = _replayed_refund(actor, idempotency_key, charge_id)
            if replay is not None:
                draft.targets.append(replay.refund_id)
                draft.amount, draft.currency, draft.details["replay"] = replay.amount, replay.currency, True
                if email_customer:
                    repeat = "No confirmation email was sent again: this refund was already made by the same request."
                    replay = replace(replay, email_outcome=repeat)
                return replay
            charge = gateway.retrieve_charge(charge_id)  # Stripe's amount_refunded, not the store's
            currency = (charge.get("currency") or "usd").lower()
            if charge.get("status") != "succeeded":
                raise ValidationFailed("Only successful charges can be refunded.")
            refund_amount = _refund_amount(
                int(charge["amount"]), int(charge.get("amount_refunded") or 0), amount, currency
            )
            draft.amount, draft.currency = refund_amount, currency
            authorize(
                actor,
                "charges.refund",
                refund_total=int(charge.get("amount_refunded") or 0) + refund_amount,
                currency=currency,
            )
            metadata = {"billy_member": str(actor.user_id or ""), "billy_source": str(actor.source)}
            if note:
                metadata["billy_note"] = note[:STRIPE_METADATA_VALUE_MAX]
            with spend.counted(actor, refund_amount, currency, idempotency_key, charge_id) as counted:
                # The intent is stored before Stripe is called: an answer lost to a timeout is
                # retried with the same key, and Stripe answers with the refund it made the first time.
                if stripe_writes.claim_intent(actor, idempotency_key, "charges.refund", charge_id, draft=draft):
                    draft.details["retry"] = True
                try:
                    refund = gateway.create_refund(charge_id, refund_amount, reason, idempotency_key, metadata=metadata)
                except StripeRequestFailed as exc:
                    raise stripe_writes.plain_failure(exc) from exc
                counted.made_as(refund["id"])
            draft.targets.append(refund["id"])
            draft.details["reason"] = reason or ""
            with session_scope() as session:
                claimed = session.get(IdempotencyRecord, idempotency_key)
                if claimed is not None:
                    claimed.result_id = refund["id"]  # done: a repeat now returns this refund
                    session.add(claimed)
            _store_refund_result(gateway, refund, charge_id, draft)
    result = RefundResult(refund["id"], refund_amount, currency, get_charge(actor, charge_id), replayed=False)
    if not email_customer:
        return result
    emailed_to, outcome = _send_confirmation(actor, result)
    return replace(result, emailed_to=emailed_to, email_outcome=outcome)


@dataclass(frozen=True)
class RefundEmailPreview:
    """What "email the customer about this refund" would do: to whom, about what, or why not."""

    refund_id: str
    amount_label: str
    to: str
    problem: str  # "" when it can be sent


def _made_refund(actor: Actor, refund_id: object) -> RefundResult:
    """A refund already in the store (made through Billy or Stripe) with its charge, for its email."""
    text = str(refund_id or "")[:255]
    with session_scope() as session:
        refund = session.get(StripeRefund, text)
    if refund is None or not refund.charge_id:
        raise NotFound("No refund with that id has been synced from Stripe.")
    if refund.status in ("failed", "canceled"):
        raise ValidationFailed(f"This refund {refund.status}: there is nothing to confirm to the customer.")
    return RefundResult(refund.id, refund.amount, refund.currency, get_charge(actor, refund.charge_id), replayed=False)


def preview_refund_confirmation(actor: Actor, refund_id: str) -> RefundEmailPreview:
    """Who would get the confirmation of a refund already made, from the store (nothing is sent)."""
    audit.authorize_read(actor, "refunds.confirmation_email")
    made = _made_refund(actor, refund_id)
    email, no_email = _customer_email(made.charge.customer_id)
    return RefundEmailPreview(made.refund_id, format_money(made.amount, made.currency), email, no_email)


def send_refund_confirmation(actor: Actor, refund_id: str) -> RefundResult:
    """Email the customer that a refund already made is on its way (the dashboard offers it with the
    refund itself; an agent asked "email her a confirmation" afterwards). Audited like that one."""
    audit.authorize_read(actor, "refunds.confirmation_email")
    made = _made_refund(actor, refund_id)
    emailed_to, outcome = _send_confirmation(actor, made)
    if not emailed_to:  # asked for on its own, an email that did not go is the answer's failure
        raise ValidationFailed(outcome.replace("The refund is done, but no", "No"))
    return replace(made, emailed_to=emailed_to, email_outcome=outcome)


_MAIL_NOT_DELIVERED = {
    True: "The mail server could not take the email right now (a temporary problem).",
    False: "The mail server refused the email (check the customer's address or Billy's mail settings).",
}


def _send_confirmation(actor: Actor, result: RefundResult) -> tuple[str, str]:
    """Email the customer that the refund is on its way: (address, "A confirmation email went to …")
    or ("", why none went). Its own audit row, which names the customer by id only (DESIGN, Audit log)."""
    charge = result.charge
    shown = ""  # the person's fuller sentence for a delivery failure (the audit row gets one without the address)
    try:
        with audit.audited(actor, "refunds.confirmation_email", charge.id, result.refund_id) as draft:
            authorize(actor, "refunds.confirmation_email")
            draft.amount, draft.currency = result.amount, result.currency
            if charge.customer_id:
                draft.targets.append(charge.customer_id)
            email, no_email = _customer_email(charge.customer_id)
            if not email:
                raise ValidationFailed(no_email)
            with session_scope() as session:
                org = session.get(Organization, 1)
                org_name = org.name if org else "Our team"
            mail = refund_confirmation_mail(
                to=email,
                org_name=org_name,
                amount_label=format_money(result.amount, result.currency),
                description=charge.description,
                order_number=charge.order_number,
            )
            try:
                get_mailer().send(mail)
            except MailDeliveryFailed as exc:
                shown = exc.message
                raise BillyError(_MAIL_NOT_DELIVERED[exc.retryable], code=exc.code) from None
    except BillyError as exc:
        return "", f"The refund is done, but no confirmation email was sent: {shown or exc.message}"
    except Exception:  # the refund is done; the audit row and the log carry the cause
        log.exception("Confirmation email for refund %s not sent", result.refund_id)
        return "", "The refund is done, but the confirmation email could not be sent (an internal error, logged)."
    return email, f"A confirmation email went to {email}."


def _replayed_refund(actor: Actor, key: str, charge_id: str) -> RefundResult | None:
    with session_scope() as session:
        seen = session.get(IdempotencyRecord, key)
        if seen is None:
            return None
        if seen.action != "charges.refund" or seen.actor_id != actor.user_id:
            raise ValidationFailed("That request key was already used for something else; reload and try again.")
        if seen.result_id == charge_id:
            return None  # claimed, but its answer never came back: ask Stripe again with the same key
        refund = session.get(StripeRefund, seen.result_id)
    charge = get_charge(actor, charge_id)
    if refund is None or refund.charge_id != charge_id:
        raise ValidationFailed("That request key was already used for another charge; reload and try again.")
    return RefundResult(refund.id, refund.amount, refund.currency, charge, replayed=True)


def _store_refund_result(
    gateway: StripeGateway, refund: dict[str, Any], charge_id: str, draft: audit.AuditDraft
) -> None:
    """Upsert the refund and the charge as Stripe now has them. Stripe already succeeded,
    so a failure here is logged and left for sync to repair, not raised. Both are stamped with
    Stripe's clock at its answer (never Billy's, which may run ahead of it); a refund Stripe
    replayed from an earlier attempt is read again first, as it may have changed since."""
    try:
        read_at = gateway.stripe_time()  # no later than the state stored, in Stripe's time
        if stripe_writes.answer_replayed():
            refund = gateway.retrieve("refund", refund["id"])
        fresh = gateway.retrieve_charge(charge_id)
        # Versioned at the re-read: the webhook for this refund is not newer, so it changes nothing.
        refunds, charges = run_transaction(
            lambda session: (
                mirror.write_objects(session, "refund", [refund], read_at, replace_equal=True),
                mirror.write_objects(session, "charge", [fresh], read_at, replace_equal=True),
            )
        )
        notices.publish("refund", refunds)
        notices.publish("charge", charges)
    except Exception as exc:  # noqa: BLE001 - the refund itself is done
        log.warning("Refund %s done in Stripe but not stored yet: %s", refund.get("id"), exc)
        draft.details["store_write"] = "failed; the next sync repairs it"
