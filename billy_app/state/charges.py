"""`/charges`: every charge, filtered by status, failure reason, dates, amount and customer."""

from __future__ import annotations

from typing import Any

from billy_app.state.list_page import ANY, ListPage
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState
from billy_app.state.view import iso
from services import reports, timezones
from services.errors import ValidationFailed
from services.money import parse_money
from services.permissions import Actor
from services.reports import ChargeFilters, ChargeListRow, Page

STATUS_CHOICES = [(ANY, "Any status"), *reports.CHARGE_STATUSES.items()]
REASON_CHOICES = [(ANY, "Any failure reason"), *reports.FAILURE_REASONS.items()]
TEXT_FIELDS = {"from": 10, "to": 10, "min": 20, "max": 20, "currency": 3, "customer": reports.MAX_TEXT}


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


def charge_row_view(r: ChargeListRow) -> dict[str, str]:
    return {
        "id": r.id,
        "customer_id": r.customer.id,
        "customer": r.customer.label if r.customer.id else "—",
        "email": r.customer.email if r.customer.name else "",
        "amount": r.amount.text,
        "state": r.status_label,
        "reason": r.reason_label,
        "failure": r.failure_message,
        "description": r.description,
        "card": r.card,
        "created": iso(r.created),
    }


class ChargesState(ListPage, LiveState, SessionState):
    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"charge", "refund", "customer"})

    async def _live_refresh(self) -> None:
        await self._read(self._cursors[-1])

    def _text_fields(self) -> dict[str, int]:
        return TEXT_FIELDS

    def _choice_fields(self) -> dict[str, list[tuple[str, str]]]:
        return {"status": STATUS_CHOICES, "reason": REASON_CHOICES}

    def _page(self, actor: Actor, applied: dict[str, str], sort: str, cursor: str | None, zone: str) -> Page[Any]:
        return reports.search_charges(actor, charge_filters(applied, zone), sort, cursor)

    def _view(self, row: Any) -> dict[str, str]:
        return charge_row_view(row)
