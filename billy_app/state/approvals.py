"""`/approvals`: the queue of refund requests, and the caller's own requests.

What the page shows is a hint; `services.refund_requests` decides every action again (who may
approve, up to which cap, never one's own, once). Every handler argument is untrusted, and an
attempt is never refused here: a request id this page did not list still goes to the service,
which refuses it and audits the refusal (DESIGN: every refusal of a member's attempt is
audited). The page only words the outcome. The lists are re-read after every action, so a
request someone else just decided shows so.
"""

from __future__ import annotations

from typing import ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.session import SessionState, guarded, off_loop
from services import refund_requests
from services.billing import REFUND_REASONS
from services.errors import BillyError
from services.permissions import can
from services.refund_requests import RequestView

STATUS_LABELS = {
    "pending": "Waiting",
    "approved": "Approved",
    "declined": "Declined",
    "failed": "Failed",
    "withdrawn": "Withdrawn",
}


def request_row(r: RequestView) -> dict[str, str]:
    status = STATUS_LABELS.get(r.status, r.status)
    if r.status == "approved" and not r.refund_id:
        status = "Approved · refund not confirmed"
    return {
        "id": str(r.id),
        "charge_id": r.charge_id,
        "charge": r.charge_label or r.charge_id,
        "customer_id": r.customer_id,
        "customer": r.customer_label or r.customer_id or "—",
        "amount": r.amount_label,
        "reason": REFUND_REASONS.get(r.reason, ""),
        "note": r.note,
        "requester": r.requester_email,
        "status": r.status,
        "status_label": status,
        "decider": r.decider_email,
        "decision_note": r.decision_note,
        "error": r.error,
        "refund_id": r.refund_id,
        "created": r.created_at.isoformat(),
        "decided": r.decided_at.isoformat() if r.decided_at else "",
        "can_decide": "yes" if r.can_decide else "",
        "mine": "yes" if r.mine else "",
    }


def _given_id(request_id: object) -> str:
    """A request id as a client sent it, as text the service can judge and audit: cut short, and
    printable only (a lone surrogate or control character would follow it into state and logs)."""
    text = request_id if isinstance(request_id, str) else repr(request_id)
    return "".join(ch if ch.isprintable() else "?" for ch in text[:40])


class ApprovalsState(SessionState):
    problem_var: ClassVar[str] = "message"

    queue: list[dict[str, str]] = []
    mine: list[dict[str, str]] = []
    can_approve: bool = False
    error: str = ""
    message: str = ""
    message_kind: str = "info"
    busy: bool = False
    # The decision dialog: which request, approve or decline, and its note.
    decision_open: bool = False
    decision_kind: str = "approve"  # "approve" | "decline"
    decision_id: str = ""
    decision_summary: str = ""
    decision_problem: str = ""

    async def _reload(self) -> None:
        actor = await self.actor()
        self.can_approve = can(actor, "refunds.approve")
        queue = await off_loop(refund_requests.list_queue, actor, "pending") if self.can_approve else []
        mine = await off_loop(refund_requests.my_requests, actor)
        self.queue = [request_row(r) for r in queue]
        self.mine = [request_row(r) for r in mine]
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

    def _known(self, request_id: str, rows: list[dict[str, str]]) -> dict[str, str] | None:
        wanted = _given_id(request_id)
        return next((r for r in rows if r["id"] == wanted), None)

    @rx.event
    @guarded
    async def open_decision(self, request_id: str, kind: str):
        """Open the approve / decline dialog for a request this page listed. Any other id is
        kept as the one to decide on, without a dialog: a real page has nothing to confirm then,
        and a forged `decide` that follows reaches the service, which refuses and audits it."""
        await self._reload_quietly()  # decide on the request as it is now
        self.decision_kind = "decline" if kind == "decline" else "approve"
        self.decision_id = _given_id(request_id)
        row = self._known(request_id, self.queue)
        if row is None:
            self.decision_open = False
            self.message, self.message_kind = "That request is no longer waiting; the list is up to date.", "error"
            return
        verb = "Refund" if self.decision_kind == "approve" else "Decline the refund of"
        self.decision_summary = (
            f"{verb} {row['amount']} on {row['charge']} ({row['customer']}), asked by {row['requester']}."
        )
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
            if self.decision_kind == "approve":
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
