"""`/subscriptions`: every subscription, filtered by status and customer, with its MRR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from billy_app.state.list_page import ANY, ListPage
from billy_app.state.live import LiveState
from billy_app.state.session import SessionState
from billy_app.state.view import iso
from services import reports
from services.permissions import Actor
from services.reports import ListTotal, Page, SubscriptionFilters, SubscriptionListRow

STATUS_CHOICES = [(ANY, "Any status"), *reports.SUBSCRIPTION_STATUSES.items()]
TEXT_FIELDS = {"customer": reports.MAX_TEXT}


@dataclass(frozen=True, kw_only=True)
class SubscriptionTableRow:
    """One row of the subscriptions table, as the page shows it."""

    id: str
    customer_id: str  # "" when the subscription has no customer (no link then)
    customer: str
    email: str
    status: str  # the status key (colours the badge), e.g. "past_due"
    state: str  # the status in words
    mrr: str  # e.g. "$49.00/month"
    counts_in_mrr: bool  # False: shown as "not in MRR"
    plan: str
    renews: str  # the current period's end, ISO 8601 UTC, or ""
    ends_at_period_end: bool  # cancelled, running until the period ends
    created: str  # ISO 8601 UTC


def subscription_row_view(subscription: SubscriptionListRow) -> SubscriptionTableRow:
    return SubscriptionTableRow(
        id=subscription.id,
        customer_id=subscription.customer.id,
        customer=subscription.customer.label if subscription.customer.id else "—",
        email=subscription.customer.email if subscription.customer.name else "",
        status=subscription.status,
        state=subscription.status_label,
        mrr=f"{subscription.mrr.text}/month",
        counts_in_mrr=subscription.counts_in_mrr,
        plan=subscription.plan,
        renews=iso(subscription.current_period_end) if subscription.current_period_end else "",
        ends_at_period_end=subscription.cancel_at_period_end,
        created=iso(subscription.created),
    )


class SubscriptionsState(ListPage, LiveState, SessionState):
    rows: list[SubscriptionTableRow] = []

    def _live_kinds(self) -> frozenset[str]:
        return frozenset({"subscription", "customer", "price", "product"})

    def _text_fields(self) -> dict[str, int]:
        return TEXT_FIELDS

    def _choice_fields(self) -> dict[str, list[tuple[str, str]]]:
        return {"status": STATUS_CHOICES}

    export_kind: ClassVar[str] = "subscriptions"

    def _filters(self, applied: dict[str, str], zone: str) -> SubscriptionFilters:
        return SubscriptionFilters(status=applied.get("status", ""), customer=applied.get("customer", ""))

    def _page(
        self, actor: Actor, applied: dict[str, str], sort: str, cursor: str | None, zone: str, limit: int
    ) -> Page[Any]:
        return reports.search_subscriptions(actor, self._filters(applied, zone), sort, cursor, limit)

    def _count_for(self, actor: Actor, applied: dict[str, str], zone: str) -> ListTotal | None:
        return reports.count_subscriptions(actor, self._filters(applied, zone))

    @staticmethod
    def _view(row: Any) -> SubscriptionTableRow:
        return subscription_row_view(row)
