"""`/charges`: every charge, filtered by status, failure reason, dates, amount and customer, and
by the global search's words (`q`: "See all N in Charges" opens `/charges?q=…`), which the
list reads through the search's own rules (services.search.found_charges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from billy_app.state.list_page import ANY, ListPage
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState
from billy_app.state.view import iso
from services import reports, search, timezones
from services.errors import ValidationFailed
from services.money import parse_money
from services.permissions import Actor, control
from services.reports import ChargeFilters, ChargeListRow, ListTotal, Page

STATUS_CHOICES = [(ANY, "Any status"), *reports.CHARGE_STATUSES.items()]
REASON_CHOICES = [(ANY, "Any failure reason"), *reports.FAILURE_REASONS.items()]
TEXT_FIELDS = {
    "q": search.MAX_QUERY,  # the global search's words: ids, last 4, #order, description
    "from": 10,
    "to": 10,
    "min": 20,
    "max": 20,
    "currency": 3,
    "customer": reports.MAX_TEXT,
}


def _amount(text: str, currency: str, which: str) -> int | None:
    if not text:
        return None
    try:
        return parse_money(text, currency or "usd")
    except ValueError as exc:
        raise ValidationFailed(f"The {which} amount: {exc}") from None


def charge_filters(applied: dict[str, str], zone: str) -> ChargeFilters:
    """The filter bar's words → the service's filters (dates are whole days in `zone`)."""
    date_from, date_to = timezones.day_range(applied.get("from", ""), applied.get("to", ""), zone)
    currency = applied.get("currency", "").lower()
    return ChargeFilters(
        status=applied.get("status", ""),
        reason=applied.get("reason", ""),
        date_from=date_from,
        date_to=date_to,
        amount_min=_amount(applied.get("min", ""), currency, "lowest"),
        amount_max=_amount(applied.get("max", ""), currency, "highest"),
        currency=currency,
        customer=applied.get("customer", ""),
    )


@dataclass(frozen=True, kw_only=True)
class ChargeTableRow:
    """One row of the charges table, as the page shows it."""

    id: str
    customer_id: str  # "" when the charge has no customer (no link then)
    customer: str
    email: str
    amount: str
    state: str
    reason: str
    failure: str
    description: str
    card: str
    created: str  # ISO 8601 UTC, shown in the viewer's zone
    refundable: bool  # succeeded with something left to refund: the row offers "Refund"


def charge_row_view(charge: ChargeListRow) -> ChargeTableRow:
    return ChargeTableRow(
        id=charge.id,
        customer_id=charge.customer.id,
        customer=charge.customer.label if charge.customer.id else "—",
        email=charge.customer.email if charge.customer.name else "",
        amount=charge.amount.text,
        state=charge.status_label,
        reason=charge.reason_label,
        failure=charge.failure_message,
        description=charge.description,
        card=charge.card,
        created=iso(charge.created),
        refundable=charge.status == "succeeded" and charge.refunded.amount < charge.amount.amount,
    )


class ChargesState(ListPage, LiveState, SessionState):
    rows: list[ChargeTableRow] = []
    # Each row's "Refund": hidden when the role can never refund, disabled with the reason when blocked.
    refund_shown: bool = False
    refund_blocked_by: str = ""

    async def _first_page(self) -> None:
        refund = control(await self.actor(), "charges.refund")
        self.refund_shown, self.refund_blocked_by = refund.shown, refund.blocked_by
        await super()._first_page()

    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"charge", "refund", "customer"})

    def _text_fields(self) -> dict[str, int]:
        return TEXT_FIELDS

    def _choice_fields(self) -> dict[str, list[tuple[str, str]]]:
        return {"status": STATUS_CHOICES, "reason": REASON_CHOICES}

    export_kind: ClassVar[str] = "charges"

    def _filters(self, applied: dict[str, str], zone: str) -> ChargeFilters:
        if applied.get("q"):  # an export walks the filters only: it would hold more than the list
            raise ValidationFailed("Export does not take the search words yet: clear Search to export.")
        return charge_filters(applied, zone)

    def _page(
        self, actor: Actor, applied: dict[str, str], sort: str, cursor: str | None, zone: str, limit: int
    ) -> Page[Any]:
        if applied.get("q"):
            return search.found_charges(actor, applied["q"], charge_filters(applied, zone), sort, cursor, limit)
        return reports.search_charges(actor, charge_filters(applied, zone), sort, cursor, limit)

    def _count_for(self, actor: Actor, applied: dict[str, str], zone: str) -> ListTotal | None:
        if applied.get("q"):
            return search.count_found_charges(actor, applied["q"], charge_filters(applied, zone))
        return reports.count_charges(actor, charge_filters(applied, zone))

    @staticmethod
    def _view(row: Any) -> ChargeTableRow:
        return charge_row_view(row)
