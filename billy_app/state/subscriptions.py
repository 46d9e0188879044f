"""`/subscriptions`: every subscription, filtered by status and customer, with its MRR."""

from __future__ import annotations

from typing import Any

from billy_app.state.list_page import ANY, ListPage
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState
from billy_app.state.view import iso
from services import reports
from services.permissions import Actor
from services.reports import Page, SubscriptionFilters, SubscriptionListRow

STATUS_CHOICES = [(ANY, "Any status"), *reports.SUBSCRIPTION_STATUSES.items()]
TEXT_FIELDS = {"customer": reports.MAX_TEXT}


def subscription_row_view(r: SubscriptionListRow) -> dict[str, str]:
    return {
        "id": r.id,
        "customer_id": r.customer.id,
        "customer": r.customer.label if r.customer.id else "—",
        "email": r.customer.email if r.customer.name else "",
        "status": r.status,
        "state": r.status_label,
        "mrr": f"{r.mrr.text}/month",
        "in_mrr": "yes" if r.counts_in_mrr else "",
        "plan": r.plan,
        "renews": iso(r.current_period_end) if r.current_period_end else "",
        "ending": "yes" if r.cancel_at_period_end else "",
        "created": iso(r.created),
    }


class SubscriptionsState(ListPage, LiveState, SessionState):
    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"subscription", "customer", "price", "product"})

    async def _live_refresh(self) -> None:
        await self._read(self._cursors[-1])

    def _text_fields(self) -> dict[str, int]:
        return TEXT_FIELDS

    def _choice_fields(self) -> dict[str, list[tuple[str, str]]]:
        return {"status": STATUS_CHOICES}

    def _page(self, actor: Actor, applied: dict[str, str], sort: str, cursor: str | None, zone: str) -> Page[Any]:
        filters = SubscriptionFilters(status=applied.get("status", ""), customer=applied.get("customer", ""))
        return reports.search_subscriptions(actor, filters, sort, cursor)

    def _view(self, row: Any) -> dict[str, str]:
        return subscription_row_view(row)
