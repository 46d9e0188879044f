"""`/approvals`: the queue of refund requests, and the caller's own requests.

What the page shows is a hint; `services.refund_requests` decides every action again (who may
approve, up to which cap, never one's own, once). Every handler argument is untrusted, and an
attempt is never refused here: a request id this page did not list still goes to the service,
which refuses it and audits the refusal (DESIGN: every refusal of a member's attempt is
audited). The page only words the outcome. The lists are re-read after every action, so a
request someone else just decided shows so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.session import SessionState, guarded, off_loop
from services import refund_requests
from services.billing import REFUND_REASONS
from services.errors import BillyError
from services.permissions import control
from services.refund_requests import RequestView

STATUS_LABELS = {
    "pending": "Waiting",
    "approved": "Approved",
    "declined": "Declined",
    "failed": "Failed",
    "withdrawn": "Withdrawn",
}


@dataclass(frozen=True, kw_only=True)
class RequestRow:
    """One refund request, as the queue and "My requests" show it."""

    id: str
    charge_id: str
    charge: str  # the charge's description, or its id
    customer_id: str  # "" when the charge has no customer (no link then)
    customer: str
    amount: str
    reason: str  # in words, or ""
    note: str
    requester: str
    status: str  # the status key (colours the badge), e.g. "pending"
    status_label: str
    decider: str
    decision_note: str
    error: str
    refund_id: str
    created: str  # ISO 8601
    decided: str  # ISO 8601, or "" while undecided
    can_decide: bool  # the caller may approve or decline it (a hint: the service decides)
    mine: bool  # the caller asked for it


def request_row(request: RequestView) -> RequestRow:
    status = STATUS_LABELS.get(request.status, request.status)
    if request.status == "approved" and not request.refund_id:
        status = "Approved · refund not confirmed"
    return RequestRow(
        id=str(request.id),
        charge_id=request.charge_id,
        charge=request.charge_label or request.charge_id,
        customer_id=request.customer_id,
        customer=request.customer_label or request.customer_id or "—",
        amount=request.amount_label,
        reason=REFUND_REASONS.get(request.reason, ""),
        note=request.note,
        requester=request.requester_email,
        status=request.status,
        status_label=status,
        decider=request.decider_email,
        decision_note=request.decision_note,
        error=request.error,
        refund_id=request.refund_id,
        created=request.created_at.isoformat(),
        decided=request.decided_at.isoformat() if request.decided_at else "",
        can_decide=request.can_decide,
        mine=request.mine,
    )


class Decision(StrEnum):
    """What the decision dialog does with a request."""

    APPROVE = "approve"
    DECLINE = "decline"


def _given_id(request_id: object) -> str:
    """A request id as a client sent it, as text the service can judge and audit: cut short, and
    printable only (a lone surrogate or control character would follow it into state and logs)."""
    text = request_id if isinstance(request_id, str) else repr(request_id)
    return "".join(ch if ch.isprintable() else "?" for ch in text[:40])


class ApprovalsState(SessionState):
    problem_var: ClassVar[str] = "message"

    queue: list[RequestRow] = []
    mine: list[RequestRow] = []
    can_approve: bool = False
    error: str = ""
    message: str = ""
    message_kind: str = "info"
    busy: bool = False
    # The decision dialog: which request, approve or decline, and its note.
    decision_open: bool = False
    decision_kind: Decision = Decision.APPROVE
    decision_id: str = ""
    decision_summary: str = ""
    decision_problem: str = ""

    async def _reload(self) -> None:
        actor = await self.actor()
        self.can_approve = control(actor, "refunds.approve").usable
        queue = await off_loop(refund_requests.list_queue, actor, "pending") if self.can_approve else []
        mine = await off_loop(refund_requests.my_requests, actor)
        self.queue = [request_row(request) for request in queue]
        self.mine = [request_row(request) for request in mine]
        self.error = ""

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """In the decision dialog while it is open, else above the lists."""
        if self.decision_open:
            self.decision_problem = problem.message
            return None
        return super()._show_problem(problem)

    @rx.event
    @guarded
    async def load(self):
        self.message, self.decision_open = "", False
        try:
            await self._reload()
        except BillyError as exc:
            self.error, self.queue, self.mine = exc.message, [], []

    @rx.event
    @guarded
    async def refresh(self):
        self.message = ""
        await self._reload_quietly()

    def _known(self, request_id: str, rows: list[RequestRow]) -> RequestRow | None:
        wanted = _given_id(request_id)
        return next((row for row in rows if row.id == wanted), None)

    @rx.event
    @guarded
    async def open_decision(self, request_id: str, kind: Decision):
        """Open the approve / decline dialog for a request this page listed. Any other id is
        kept as the one to decide on, without a dialog: a real page has nothing to confirm then,
        and a forged `decide` that follows reaches the service, which refuses and audits it."""
        await self._reload_quietly()  # decide on the request as it is now
        self.decision_kind = kind
        self.decision_id = _given_id(request_id)
        row = self._known(request_id, self.queue)
        if row is None:
            self.decision_open = False
            self.message, self.message_kind = "That request is no longer waiting; the list is up to date.", "error"
            return
        verb = "Refund" if self.decision_kind == Decision.APPROVE else "Decline the refund of"
        self.decision_summary = f"{verb} {row.amount} on {row.charge} ({row.customer}), asked by {row.requester}."
        self.decision_problem, self.busy, self.decision_open = "", False, True

    @rx.event
    def set_decision_open(self, value: bool):
        if not value:
            self.decision_open, self.decision_id = False, ""

    @rx.event
    @guarded
    async def decide(self, form_data: dict):
        """Approve (the refund is made in the caller's name) or decline, with the dialog's note."""
        if self.busy or not self.decision_id:
            return
        note = form_data.get("note") if isinstance(form_data, dict) else None
        note = note[: refund_requests.NOTE_MAX + 200] if isinstance(note, str) else ""  # the service judges it
        self.busy, self.decision_problem = True, ""
        yield
        try:
            if self.decision_kind == Decision.APPROVE:
                done = await self._call(refund_requests.approve, self.decision_id, note)
                text = f"Approved: {done.amount_label} refunded to the customer in your name (refund {done.refund_id})."
            else:
                done = await self._call(refund_requests.decline, self.decision_id, note)
                text = f"Declined. {done.requester_email} sees your note under their requests."
        except BillyError as exc:
            self._show_problem(exc)
            await self._reload_quietly()
            return
        finally:
            self.busy = False
        self.decision_open, self.decision_id = False, ""
        self.message, self.message_kind = text, "info"
        await self._reload_quietly()

    @rx.event
    @guarded
    async def withdraw(self, request_id: str):
        """Withdraw one of the caller's requests. Whatever id arrives goes to the service, which
        refuses (and audits) a request that is not theirs or does not exist."""
        try:
            await self._call(refund_requests.withdraw, _given_id(request_id))
        except BillyError as exc:
            self.message, self.message_kind = exc.message, "error"
        else:
            self.message, self.message_kind = "Request withdrawn.", "info"
        await self._reload_quietly()

    async def _reload_quietly(self) -> None:
        """Re-read the lists after an action; an outcome already shown is not replaced by a reload error."""
        try:
            await self._reload()
        except BillyError as exc:
            self.error = exc.message
