"""Refund requests: a refund over its requester's cap waits for someone whose cap covers it.

A Clerk or Manager whose refund would exceed their cap submits it with a note; anyone else
whose own cap covers it approves or declines it from the queue; approval executes the
refund in the approver's name through `billing.issue_refund` (the same checks, the same
per-charge lock, one idempotency key kept on the request) and both people are recorded,
on the request and in the audit rows. (Issue 4, "Over-cap refunds become requests".)

A request leaves `pending` exactly once: every decision is a conditional UPDATE on the
status, so of two approvals at the same moment only one wins. The states:

    pending ──approve──▶ approved (refund_id once Stripe confirms) ──Stripe refuses──▶ failed
       ├──decline──▶ declined
       └──withdraw──▶ withdrawn (by the requester)

An approval whose refund Stripe did not answer (a network failure, a crash) stays
`approved` without a refund id; approving it again, by the same approver, retries the
same refund with the same key, so it can never make a second one.
"""

from __future__ import annotations

import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from services import audit, billing, identity, notices, spend
from services.config import get_settings
from services.db import session_scope
from services.errors import (
    BillyError,
    NotFound,
    PermissionDenied,
    RefundBudgetExceeded,
    RefundCapExceeded,
    StripeRequestFailed,
    ValidationFailed,
)
from services.mail_templates import refund_decision_mail, refund_request_mail
from services.mailer import OutgoingMail, SmtpMailer
from services.models import Member, Organization, RefundRequest, StripeCharge, StripeCustomer, table_of, utcnow
from services.money import format_money
from services.permissions import Actor, Permission, Source, authorize, role_of
from services.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)

STATUSES = ("pending", "approved", "declined", "failed", "withdrawn")
NOTE_MAX = billing.NOTE_MAX
NOTICE_KIND = "refund_request"  # store-change notices: the queue, "my requests" and the nav badge re-read
NOTICE_MAIL_TIMEOUT = 5.0  # seconds: a notice email never keeps a request or decision waiting long
QUEUE_LIMIT = 200
_table = table_of(RefundRequest)


@dataclass(frozen=True)
class RequestView:
    """One request as a page, the API or the agent shows it, with what the caller may do."""

    id: int
    charge_id: str
    customer_id: str
    customer_label: str  # the customer's name or email, from the store ("" if not synced)
    charge_label: str  # the charge's description from the store ("" if not synced)
    amount: int
    currency: str
    reason: str
    note: str
    requested_by: int
    requester_email: str
    status: str
    decided_by: int | None
    decider_email: str
    decided_at: datetime | None
    decision_note: str
    error: str
    refund_id: str
    created_at: datetime
    mine: bool  # the caller asked for it
    can_decide: bool  # the caller may approve or decline it (a hint; every decision is re-checked)

    @property
    def amount_label(self) -> str:
        return format_money(self.amount, self.currency)


class NoSuchRequest(NotFound, PermissionDenied):
    """No refund request has that id. Shown as not found, but deciding on or withdrawing a request
    that does not exist is a refused attempt, so `audit.audited` records it as `denied`."""

    code = "not_found"

    def __init__(self) -> None:
        super().__init__("There is no such refund request.")


def request_target(request_id: int | str) -> str:
    """How a request is named among an audit row's target ids."""
    return f"refund_request:{request_id}"


def _given_target(request_id: Any) -> str:
    """The request id as the caller gave it, fit for an audit row: printable, at most 40
    characters (a forged id may be anything: a list, a lone surrogate, a page of text)."""
    text = request_id if isinstance(request_id, str) else repr(request_id)
    text = "".join(ch if ch.isprintable() else "?" for ch in text[:40])
    return request_target(text)


# --- checks on untrusted input ---------------------------------------------------------------


def _check_id(request_id: Any) -> int:
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        raise NoSuchRequest()
    text = str(request_id).strip() if isinstance(request_id, str) else str(request_id)
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        raise NoSuchRequest()
    value = int(text)
    if value <= 0 or value > 2**63 - 1:
        raise NoSuchRequest()
    return value


def _check_note(note: Any, *, required: str | None) -> str:
    """A person's explanation: the same rules as a refund's note (`billing.check_note`)."""
    return billing.check_note(note, required=required)


def _check_charge_id(charge_id: Any) -> str:
    text = charge_id.strip() if isinstance(charge_id, str) else ""
    if not text or len(text) > 255:
        raise NotFound("No charge with that id has been synced from Stripe.")
    return text


def _check_reason(reason: Any) -> str | None:
    if reason in (None, ""):
        return None
    if reason not in billing.REFUND_REASONS:
        raise ValidationFailed("Choose a reason: requested by customer, duplicate charge or fraudulent.")
    return str(reason)


def _customer_of(charge: dict[str, Any]) -> str | None:
    customer = charge.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return str(customer)[:255] if customer else None


def _amount_and_currency(charge: dict[str, Any], amount: int | None) -> tuple[int, int, str]:
    """(refund amount, already refunded, currency) from Stripe's charge, with issue_refund's rules."""
    currency = str(charge.get("currency") or "usd").lower()
    if charge.get("status") != "succeeded":
        raise ValidationFailed("Only successful charges can be refunded.")
    already = int(charge.get("amount_refunded") or 0)
    return billing._refund_amount(int(charge["amount"]), already, amount, currency), already, currency


def _outcome_unknown(exc: BaseException) -> bool:
    """Did Stripe leave us not knowing whether the refund happened (no answer, or a 5xx)?"""
    if not isinstance(exc, BillyError):
        return True
    return isinstance(exc, StripeRequestFailed) and exc.outcome_unknown


# --- reading ----------------------------------------------------------------------------------


def _load(request_id: int) -> RefundRequest:
    with session_scope() as session:
        row = session.get(RefundRequest, request_id)
    if row is None:
        raise NoSuchRequest()
    return row


def _covers(actor: Actor, row: RefundRequest, refunded_before: int) -> bool:
    try:
        authorize(actor, "refunds.approve", refund_total=refunded_before + row.amount, currency=row.currency)
    except PermissionDenied:
        return False
    return True


def _views(actor: Actor, rows: list[RefundRequest]) -> list[RequestView]:
    """Rows as views, with the store's words for each charge and customer."""
    charge_ids = {r.charge_id for r in rows}
    customer_ids = {r.customer_id for r in rows if r.customer_id}
    with session_scope() as session:
        charges = (
            {c.id: c for c in session.exec(select(StripeCharge).where(col(StripeCharge.id).in_(charge_ids)))}
            if charge_ids
            else {}
        )
        customers = (
            {c.id: c for c in session.exec(select(StripeCustomer).where(col(StripeCustomer.id).in_(customer_ids)))}
            if customer_ids
            else {}
        )
    approver = Permission.APPROVE_REFUNDS in role_of(actor).permissions
    views = []
    for r in rows:
        charge = charges.get(r.charge_id)
        customer = customers.get(r.customer_id or "")
        mine = actor.user_id is not None and r.requested_by == actor.user_id
        can_decide = (
            r.status == "pending"
            and approver
            and not mine
            and _covers(actor, r, charge.amount_refunded if charge else 0)
        )
        views.append(
            RequestView(
                id=r.id or 0,
                charge_id=r.charge_id,
                customer_id=r.customer_id or "",
                customer_label=(customer.name or customer.email or "") if customer else "",
                charge_label=(charge.description or "") if charge else "",
                amount=r.amount,
                currency=r.currency,
                reason=r.reason or "",
                note=r.note,
                requested_by=r.requested_by,
                requester_email=r.requester_email,
                status=r.status,
                decided_by=r.decided_by,
                decider_email=r.decider_email or "",
                decided_at=r.decided_at,
                decision_note=r.decision_note or "",
                error=r.error or "",
                refund_id=r.refund_id or "",
                created_at=r.created_at,
                mine=mine,
                can_decide=can_decide,
            )
        )
    return views


def get_request(actor: Actor, request_id: Any) -> RequestView:
    """One request: approvers see any, everyone else only their own."""
    audit.authorize_read(actor, "refunds.queue")
    row = _load(_check_id(request_id))
    approver = Permission.APPROVE_REFUNDS in role_of(actor).permissions
    if not approver and row.requested_by != actor.user_id:
        raise NotFound("There is no such refund request.")
    return _views(actor, [row])[0]


def list_queue(actor: Actor, status: str = "pending", limit: int = QUEUE_LIMIT) -> list[RequestView]:
    """Requests in one status ("all" for every status). Approvers see everyone's, others only
    their own. Pending ones oldest first (a queue), the rest newest first."""
    audit.authorize_read(actor, "refunds.queue")
    if status != "all" and status not in STATUSES:
        raise ValidationFailed("Choose a status: pending, approved, declined, failed, withdrawn or all.")
    limit = max(1, min(int(limit), QUEUE_LIMIT))
    stmt = select(RefundRequest)
    if status != "all":
        stmt = stmt.where(RefundRequest.status == status)
    if Permission.APPROVE_REFUNDS not in role_of(actor).permissions:
        stmt = stmt.where(RefundRequest.requested_by == actor.user_id)
    created, rid = col(RefundRequest.created_at), col(RefundRequest.id)
    order = (created.asc(), rid.asc()) if status == "pending" else (created.desc(), rid.desc())
    with session_scope() as session:
        rows = list(session.exec(stmt.order_by(*order).limit(limit)))
    return _views(actor, rows)


def my_requests(actor: Actor, limit: int = 50) -> list[RequestView]:
    """The caller's own requests in every status, newest first."""
    audit.authorize_read(actor, "refunds.queue")
    limit = max(1, min(int(limit), QUEUE_LIMIT))
    stmt = (
        select(RefundRequest)
        .where(RefundRequest.requested_by == actor.user_id)
        .order_by(col(RefundRequest.created_at).desc(), col(RefundRequest.id).desc())
        .limit(limit)
    )
    with session_scope() as session:
        rows = list(session.exec(stmt))
    return _views(actor, rows)


def pending_count_for(actor: Actor) -> int:
    """How many requests wait on this member's decision (the navigation badge): pending, someone
    else's, within their own cap (against the store's amount refunded, as the queue shows it).
    0 for anyone who cannot approve."""
    audit.authorize_read(actor, "refunds.queue")
    if actor.user_id is None or Permission.APPROVE_REFUNDS not in role_of(actor).permissions:
        return 0
    stmt = (
        select(RefundRequest, StripeCharge.amount_refunded)
        .join(StripeCharge, col(StripeCharge.id) == col(RefundRequest.charge_id), isouter=True)
        .where(RefundRequest.status == "pending", RefundRequest.requested_by != actor.user_id)
    )
    with session_scope() as session:
        rows = list(session.exec(stmt))
    return sum(1 for row, refunded in rows if _covers(actor, row, refunded or 0))


# --- telling people ---------------------------------------------------------------------------


def _approvals_link() -> str:
    return f"{get_settings().public_url.rstrip('/')}/approvals"


def _member_actor(session: Session, member: Member, org: Organization | None) -> Actor:
    """A member as `identity.verify_access` would build them, to ask the engine what they may approve."""
    return identity.member_actor(session, member, Source.SYSTEM, now=utcnow(), org=org)


def approvers_for(row: RefundRequest, refunded_before: int) -> list[Actor]:
    """Active members who may decide this request now: approvers whose cap covers it, never the requester."""
    with session_scope() as session:
        org = session.get(Organization, 1)
        members = session.exec(
            select(Member).where(col(Member.active).is_(True), Member.id != row.requested_by).order_by(col(Member.id))
        )
        candidates = [_member_actor(session, member, org) for member in members]
    return [candidate for candidate in candidates if _covers(candidate, row, refunded_before)]


def notice_mailer() -> SmtpMailer:
    """One try and a short timeout: a notice that cannot go is logged, not retried while the member waits."""
    return SmtpMailer(get_settings(), attempts=1, timeout=NOTICE_MAIL_TIMEOUT)


def _send_each(mails: list[OutgoingMail], what: str) -> int:
    """One mail per recipient, sent side by side (so a slow mail server costs one timeout, not one
    per approver). A failure is logged and skipped: telling people never undoes or blocks the
    request or decision it tells of."""
    if not mails:
        return 0
    sender = notice_mailer()

    def send(mail: OutgoingMail) -> bool:
        try:
            sender.send(mail)
        except Exception as exc:  # noqa: BLE001 - logged; the action itself is done
            log.warning("%s email to %s not sent: %s", what, mail.to, exc)
            return False
        return True

    with ThreadPoolExecutor(max_workers=min(8, len(mails)), thread_name_prefix="refund-notice") as pool:
        return sum(pool.map(send, mails))


def _tell_approvers(row: RefundRequest, view: RequestView, refunded_before: int) -> int:
    with session_scope() as session:
        org = session.get(Organization, 1)
        org_name = org.name if org else "your organisation"
    mails = [
        refund_request_mail(
            to=approver.email,
            org_name=org_name,
            requester_email=view.requester_email,
            amount_label=view.amount_label,
            charge_label=view.charge_label or view.charge_id,
            customer_label=view.customer_label,
            note=view.note,
            link=_approvals_link(),
        )
        for approver in approvers_for(row, refunded_before)
    ]
    return _send_each(mails, "Refund request")


def _tell_requester(view: RequestView) -> int:
    """The decision, to whoever asked (if they are still a member)."""
    with session_scope() as session:
        requester = session.get(Member, view.requested_by)
        if requester is None or not requester.active:
            return 0
        to = requester.email
    mail = refund_decision_mail(
        to=to,
        decider_email=view.decider_email,
        approved=view.status == "approved",
        amount_label=view.amount_label,
        charge_label=view.charge_label or view.charge_id,
        refund_id=view.refund_id,
        note=view.decision_note,
        link=_approvals_link(),
    )
    return _send_each([mail], "Refund decision")


# --- acting -----------------------------------------------------------------------------------


def submit_request(
    actor: Actor,
    charge_id: str,
    amount: int | None,
    reason: str | None,
    note: str,
    gateway: StripeGateway | None = None,
) -> RequestView:
    """Ask for a refund over the caller's cap. Refused when it would fit their cap (then they
    just refund it) and, like a refund, when the amount is not one Stripe would accept now."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "refunds.request", str(charge_id)[:255]) as draft:
        authorize(actor, "refunds.request")
        if actor.user_id is None:
            raise PermissionDenied("Only a member can ask for a refund to be approved.")
        charge_id = _check_charge_id(charge_id)
        reason = _check_reason(reason)
        note = _check_note(note, required="Add a note for the approver: why should this refund be made?")
        charge = gateway.retrieve_charge(charge_id)  # Stripe's amount_refunded, as issue_refund reads it
        refund_amount, already, currency = _amount_and_currency(charge, amount)
        draft.amount, draft.currency = refund_amount, currency
        draft.details["reason"] = reason or ""
        try:
            authorize(actor, "charges.refund", refund_total=already + refund_amount, currency=currency)
            spend.check_budget(actor, refund_amount, currency)
        except RefundBudgetExceeded as exc:  # a kind of over-cap: checked first
            draft.details["over_budget"] = exc.message
        except RefundCapExceeded as exc:
            draft.details["over_cap"] = exc.message
        else:
            raise ValidationFailed(
                f"{format_money(refund_amount, currency)} is within your refund limit and daily budget: "
                "just refund it, no approval is needed."
            )
        with session_scope() as session:
            waiting = session.exec(
                select(RefundRequest.id).where(
                    RefundRequest.charge_id == charge_id,
                    RefundRequest.requested_by == actor.user_id,
                    RefundRequest.status == "pending",
                )
            ).first()
            if waiting is not None:
                raise ValidationFailed(
                    "You already have a request waiting for this charge: withdraw it first to ask for another amount."
                )
            row = RefundRequest(
                charge_id=charge_id,
                customer_id=_customer_of(charge),
                amount=refund_amount,
                currency=currency,
                reason=reason,
                note=note,
                requested_by=actor.user_id,
                requester_email=actor.email,
                idempotency_key=secrets.token_urlsafe(24),
            )
            session.add(row)
            session.flush()
            draft.targets.append(request_target(row.id or 0))
    view = _views(actor, [row])[0]
    notices.publish(NOTICE_KIND, [str(view.id)])
    _tell_approvers(row, view, already)  # after the commit and outside any transaction
    return view


def _already_decided(row: RefundRequest, viewer: Actor) -> str:
    mine = viewer.user_id is not None and row.decided_by == viewer.user_id
    who = "you" if mine else (row.decider_email or "someone else")
    if row.status == "approved":
        done = f" (refund {row.refund_id})" if row.refund_id else " and its refund is being made"
        return f"This request was already approved by {who}{done}."
    if row.status == "declined":
        return f"This request was already declined by {who}."
    if row.status == "withdrawn":
        return "You already withdrew this request." if mine else "This request was withdrawn by the person who asked."
    if row.status == "failed":
        return f"This request already failed: {row.error or 'Stripe refused the refund'}."
    return "This request is no longer waiting for a decision."


def _transition(request_id: int, where: list[Any], **values: Any) -> bool:
    """One conditional UPDATE: True if this call moved the request, False if it had moved already."""
    with session_scope() as session:
        moved = session.exec(_table.update().where(_table.c.id == request_id, *where).values(**values)).rowcount
    if moved == 1:
        notices.publish(NOTICE_KIND, [str(request_id)])  # committed: open queues and badges re-read
    return moved == 1


def _fresh_refusal(request_id: int, viewer: Actor) -> ValidationFailed:
    return ValidationFailed(_already_decided(_load(request_id), viewer))


def approve(actor: Actor, request_id: int, note: str = "", gateway: StripeGateway | None = None) -> RequestView:
    """Execute a pending request in the approver's name, if their own cap covers it now
    (against Stripe's amount_refunded at this moment) and they did not ask for it."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "refunds.approve", _given_target(request_id)) as draft:
        authorize(actor, "refunds.approve")
        rid = _check_id(request_id)
        note = _check_note(note, required=None)
        row = _load(rid)
        draft.targets.append(row.charge_id)
        draft.amount, draft.currency = row.amount, row.currency
        draft.details.update(requested_by=row.requester_email, requested_by_id=row.requested_by, request_id=rid)
        if actor.user_id is None or row.requested_by == actor.user_id:
            raise PermissionDenied(
                "You cannot approve your own refund request: someone else whose refund limit covers it has to."
            )
        # An approval of ours whose refund Stripe never confirmed: retry it with the same key.
        resuming = row.status == "approved" and not row.refund_id and row.decided_by == actor.user_id
        if row.status != "pending" and not resuming:
            raise ValidationFailed(_already_decided(row, actor))
        if not resuming:
            _check_and_claim(actor, row, note, gateway)
        draft.details["retry"] = resuming
        refund_id = _execute(actor, row, gateway, resuming=resuming)
        draft.targets.append(refund_id)
    view = _views(actor, [_load(rid)])[0]
    if view.status == "approved" and view.refund_id:
        _tell_requester(view)
    return view


def _check_and_claim(actor: Actor, row: RefundRequest, note: str, gateway: StripeGateway) -> None:
    """Re-check the request against Stripe now, then take it: pending → approved, once."""
    rid = row.id or 0
    pending = [_table.c.status == "pending"]
    charge = gateway.retrieve_charge(row.charge_id)
    already = int(charge.get("amount_refunded") or 0)
    try:
        authorize(actor, "refunds.approve", refund_total=already + row.amount, currency=row.currency)
        spend.check_budget(actor, row.amount, row.currency)  # an approved refund counts against the approver
    except RefundCapExceeded as exc:
        raise _over_limit("Approving", exc) from None
    try:
        _, _, currency = _amount_and_currency(charge, row.amount)
        if currency != row.currency:
            raise ValidationFailed("The charge's currency is not the one this request was made in.")
    except ValidationFailed as exc:  # it can never be made as asked: it fails, decided by this approver
        failed = {"status": "failed", "error": exc.message[:NOTE_MAX], "decision_note": note or None}
        if not _transition(rid, pending, **failed, **_decider(actor)):
            raise _fresh_refusal(rid, actor) from None
        raise
    if not _transition(rid, pending, status="approved", decision_note=note or None, **_decider(actor)):
        raise _fresh_refusal(rid, actor)


def _over_limit(doing: str, exc: RefundCapExceeded) -> RefundCapExceeded:
    return RefundCapExceeded(f"{doing} this request takes someone whose refund limit covers it. {exc.message}")


def _decider(actor: Actor) -> dict[str, Any]:
    return {"decided_by": actor.user_id, "decider_email": actor.email, "decided_at": utcnow()}


def _execute(actor: Actor, row: RefundRequest, gateway: StripeGateway, *, resuming: bool) -> str:
    """The refund itself, in the approver's name; the request records how it went.

    On a first attempt every refusal comes before Stripe is asked, so the request can go back
    to the queue (the cap moved) or fail. On a retry, Billy's own checks may be refusing
    because the first attempt did reach Stripe: the request then stays approved and unconfirmed
    rather than go back to a queue where someone could refund it a second time."""
    rid = row.id or 0
    ours = [_table.c.status == "approved", _table.c.refund_id.is_(None), _table.c.decided_by == actor.user_id]
    try:
        result = billing.issue_refund(actor, row.charge_id, row.amount, row.reason, row.idempotency_key, gateway)
    except BaseException as exc:
        if _outcome_unknown(exc) or (resuming and isinstance(exc, (PermissionDenied, ValidationFailed))):
            what = exc.message if isinstance(exc, BillyError) else "Billy stopped before Stripe answered"
            unconfirmed = (
                f"Stripe has not confirmed the refund ({what}). Approve again to retry it "
                "(never a second refund); check the charge in Stripe if this persists."
            )
            _transition(rid, ours, error=unconfirmed[:NOTE_MAX])
        elif isinstance(exc, PermissionDenied):
            # Refunds on the charge moved since the check, past this approver's cap: back to the queue.
            back = {"status": "pending", "decided_by": None, "decider_email": None, "decided_at": None}
            _transition(rid, ours, **back, decision_note=None)
        else:
            _transition(rid, ours, status="failed", error=str(exc)[:NOTE_MAX])
        raise
    _transition(rid, [_table.c.status == "approved"], refund_id=result.refund_id, error=None)
    return result.refund_id


def decline(actor: Actor, request_id: int, note: str) -> RequestView:
    """Turn a pending request down, with a note for the requester. Like approval, it takes
    someone other than the requester whose cap covers the request."""
    with audit.audited(actor, "refunds.decline", _given_target(request_id)) as draft:
        authorize(actor, "refunds.decline")
        rid = _check_id(request_id)
        note = _check_note(note, required="Add a note for the requester: why is this refund declined?")
        row = _load(rid)
        draft.targets.append(row.charge_id)
        draft.amount, draft.currency = row.amount, row.currency
        draft.details.update(requested_by=row.requester_email, requested_by_id=row.requested_by, request_id=rid)
        if actor.user_id is None or row.requested_by == actor.user_id:
            raise PermissionDenied("You cannot decide your own refund request; withdraw it instead.")
        if row.status != "pending":
            raise ValidationFailed(_already_decided(row, actor))
        with session_scope() as session:
            charge = session.get(StripeCharge, row.charge_id)
        refunded = charge.amount_refunded if charge else 0  # nothing moves: the store's word is enough
        try:
            authorize(actor, "refunds.decline", refund_total=refunded + row.amount, currency=row.currency)
        except RefundCapExceeded as exc:
            raise _over_limit("Declining", exc) from None
        declined = {"status": "declined", "decision_note": note, **_decider(actor)}
        if not _transition(rid, [_table.c.status == "pending"], **declined):
            raise _fresh_refusal(rid, actor)
    view = _views(actor, [_load(rid)])[0]
    _tell_requester(view)
    return view


def withdraw(actor: Actor, request_id: int) -> RequestView:
    """The requester takes back a request that is still waiting."""
    with audit.audited(actor, "refunds.withdraw", _given_target(request_id)) as draft:
        authorize(actor, "refunds.withdraw")
        rid = _check_id(request_id)
        row = _load(rid)
        draft.targets.append(row.charge_id)
        draft.amount, draft.currency = row.amount, row.currency
        draft.details.update(request_id=rid)
        if actor.user_id is None or row.requested_by != actor.user_id:
            raise PermissionDenied("Only the person who asked can withdraw a refund request; approvers decline it.")
        mine_pending = [_table.c.status == "pending", _table.c.requested_by == actor.user_id]
        if not _transition(rid, mine_pending, status="withdrawn", **_decider(actor)):
            raise _fresh_refusal(rid, actor)
    return _views(actor, [_load(rid)])[0]
