"""`/subscriptions`: every subscription from the store with its monthly value, filtered and paged."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time, shell
from billy_app.components.list_page import (
    choice_filter,
    customer_cell,
    empty_note,
    error_callout,
    filter_bar,
    pager,
    sort_select,
    text_filter,
)
from billy_app.components.tables import header
from billy_app.state.session import SessionState
from billy_app.state.subscriptions import STATUS_CHOICES, SubscriptionsState

S = SubscriptionsState
STATUS_COLORS = {"active": "green", "past_due": "amber", "trialing": "blue", "canceled": "gray", "unpaid": "red"}


def subscription_row(s: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(local_time(s["created"])),
        customer_cell(s),
        rx.table.cell(
            rx.vstack(
                rx.text(s["plan"], size="2"),
                rx.text(s["id"], size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.text(s["mrr"], weight="medium"),
                rx.cond(s["in_mrr"] == "", rx.text("not in MRR", size="1", color_scheme="gray")),
                spacing="0",
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.badge(
                    s["state"],
                    color_scheme=rx.match(s["status"], *[(k, v) for k, v in STATUS_COLORS.items()], "gray"),
                    variant="soft",
                ),
                rx.cond(s["ending"] == "yes", rx.text("ends at period end", size="1", color_scheme="amber")),
                spacing="1",
            )
        ),
        rx.table.cell(rx.cond(s["renews"] != "", local_time(s["renews"]), "—")),
        custom_attrs={"data-subscription": s["id"]},
        class_name="subscription-row",
    )


@rx.page(
    route="/subscriptions",
    title="Subscriptions · Agent Billy",
    on_load=[SessionState.require_member, SubscriptionsState.load, SubscriptionsState.follow],
)
def subscriptions() -> rx.Component:
    return shell(
        filter_bar(
            S,
            choice_filter(S, "status", STATUS_CHOICES, "Status"),
            text_filter(S, "customer", "Customer", placeholder="cus_… or email or name", width="16em"),
        ),
        rx.hstack(sort_select(S), rx.spacer(), pager(S), width="100%", align="center"),
        error_callout(S),
        rx.table.root(
            header("Started", "Customer", "Plan", "Per month", "Status", "Current period ends"),
            rx.table.body(rx.foreach(S.rows, subscription_row)),
            width="100%",
            id="subscriptions-table",
        ),
        empty_note(S, "No subscriptions match these filters."),
        pager(S, "-bottom"),
        title="Subscriptions",
    )
