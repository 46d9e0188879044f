"""`/subscriptions`: every subscription from the store with its monthly value, filtered and paged."""

from __future__ import annotations

import reflex as rx

from billy_app.components import light
from billy_app.components.layout import local_time
from billy_app.components.list_page import (
    CUSTOMER_FILTER,
    ChoiceFilter,
    Column,
    ListDescription,
    customer_cell,
    list_page,
)
from billy_app.components.page_frame import billy_page
from billy_app.components.subscription_actions import manage_control_loader, manage_subscription
from billy_app.components.tables import colored_badge, name_and_id
from billy_app.state.subscriptions import STATUS_CHOICES, SubscriptionsState, SubscriptionTableRow

STATUS_COLORS = {"active": "green", "past_due": "amber", "trialing": "blue", "canceled": "gray", "unpaid": "red"}


def monthly_cell(subscription: rx.Var[SubscriptionTableRow]) -> rx.Component:
    return light.stack(
        light.text(subscription.mrr, weight="medium"),
        rx.cond(~subscription.counts_in_mrr, light.note("not in MRR")),
    )


def status_cell(subscription: rx.Var[SubscriptionTableRow]) -> rx.Component:
    return light.stack(
        colored_badge(subscription.state, subscription.status, STATUS_COLORS, "gray"),
        rx.cond(subscription.ends_at_period_end, light.text("ends at period end", size="1", color="amber")),
        gap="1",
    )


SUBSCRIPTIONS = ListDescription(
    state=SubscriptionsState,
    item="subscription",
    items="subscriptions",
    filters=(ChoiceFilter("status", "Status", STATUS_CHOICES), CUSTOMER_FILTER),
    columns=(
        Column("Started", lambda subscription: local_time(subscription.created)),
        Column("Customer", customer_cell),
        Column("Plan", lambda subscription: name_and_id(subscription.plan, subscription.id)),
        Column("Per month", monthly_cell),
        Column("Status", status_cell),
        Column(
            "Current period ends",
            lambda subscription: rx.cond(subscription.renews != "", local_time(subscription.renews), "—"),
        ),
        Column("", lambda subscription: manage_subscription(subscription.id)),  # Managers and the Owner
    ),
)


@billy_page("/subscriptions", "Subscriptions", on_load=[SubscriptionsState.load, SubscriptionsState.follow])
def subscriptions() -> rx.Component:
    return rx.fragment(manage_control_loader(), list_page(SUBSCRIPTIONS))
