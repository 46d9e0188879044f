"""`/charges/[charge_id]`: one charge as complete as Stripe's own page, with a timeline of what
Stripe and Billy's members did to it, and "Refund" for the roles that may refund."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time
from billy_app.components.page_frame import billy_page
from billy_app.components.refund_dialog import refund_dialog
from billy_app.components.tables import rows_table, small_gray, state_badge, timeline_line
from billy_app.state.charge import ChargeState, MovementRow, TimelineRow
from billy_app.state.refund import RefundState

TONE_COLORS = {"good": "green", "bad": "red"}


def fact(label: str, value: rx.Var[str] | rx.Component, fact_id: str) -> rx.Component:
    """One labelled fact; the row is left out when its value is empty."""
    shown = value if isinstance(value, rx.Component) else rx.text(value, size="2", id=fact_id)
    row = rx.data_list.item(rx.data_list.label(label), rx.data_list.value(shown))
    return row if isinstance(value, rx.Component) else rx.cond(value != "", row)


def refund_control() -> rx.Component:
    """Hidden for a role that can never refund; disabled with the reason when blocked now."""
    button = rx.button(
        "Refund",
        on_click=RefundState.start(ChargeState.facts.id),
        disabled=ChargeState.refund_blocked_by != "",
        id="charge-refund",
    )
    return rx.cond(
        ChargeState.refund_shown & ChargeState.facts.refundable,
        rx.vstack(
            button,
            rx.cond(ChargeState.refund_blocked_by != "", small_gray(ChargeState.refund_blocked_by)),
            align="end",
            spacing="1",
        ),
    )


def movement_row(row: rx.Var[MovementRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(local_time(row.created)),
        rx.table.cell(rx.text(row.amount, weight="medium")),
        rx.table.cell(row.status),
        rx.table.cell(row.reason),
        rx.table.cell(small_gray(row.id)),
    )


def timeline_row(entry: rx.Var[TimelineRow]) -> rx.Component:
    return timeline_line(entry.at, entry.what, entry.by, entry.tone, TONE_COLORS, class_name="timeline-entry")


@billy_page("/charges/[charge_id]", "Charge", on_load=[ChargeState.load, ChargeState.follow])
def charge_detail() -> rx.Component:
    facts = ChargeState.facts
    return rx.fragment(
        rx.link("← All charges", href="/charges"),
        rx.cond(ChargeState.error != "", rx.callout(ChargeState.error, color_scheme="red", id="charge-error")),
        rx.cond(
            facts.id != "",
            rx.vstack(
                rx.card(
                    rx.hstack(
                        rx.vstack(
                            rx.hstack(
                                rx.heading(facts.amount, size="6", id="charge-amount"),
                                state_badge(facts.status_label),
                                align="center",
                            ),
                            rx.cond(facts.refunded != "", small_gray(facts.refunded, id="charge-refunded")),
                            rx.cond(
                                facts.failure != "",
                                rx.text(facts.failure, color_scheme="red", size="2", id="charge-failure"),
                            ),
                            spacing="1",
                        ),
                        refund_control(),
                        justify="between",
                        width="100%",
                    )
                ),
                rx.card(
                    rx.data_list.root(
                        fact("Date", local_time(facts.created), "charge-date"),
                        fact("Description", facts.description, "charge-description"),
                        fact("Order number", facts.order_number, "charge-order"),
                        rx.data_list.item(
                            rx.data_list.label("Customer"),
                            rx.data_list.value(
                                rx.link(facts.customer, href="/customers/" + facts.customer_id, id="charge-customer")
                            ),
                        ),
                        fact("Payment method", facts.card, "charge-card"),
                        fact("Card", facts.card_more, "charge-card-more"),
                        fact("Radar", facts.radar, "charge-radar"),
                        fact("Payment intent", facts.payment_intent_id, "charge-payment-intent"),
                        fact("Charge id", facts.id, "charge-id"),
                    )
                ),
                rx.heading("Refunds", size="4"),
                rows_table(
                    ChargeState.refunds,
                    movement_row,
                    ("Date", "Amount", "Status", "Reason", "Refund"),
                    empty=small_gray("No refunds."),
                    id="charge-refunds",
                ),
                rx.cond(
                    ChargeState.disputes.length() > 0,
                    rx.vstack(
                        rx.heading("Disputes", size="4"),
                        rows_table(
                            ChargeState.disputes,
                            movement_row,
                            ("Date", "Amount", "Status", "Reason", "Dispute"),
                            id="charge-disputes",
                        ),
                        width="100%",
                    ),
                ),
                rx.heading("Timeline", size="4"),
                rx.card(rx.vstack(rx.foreach(ChargeState.timeline, timeline_row), width="100%"), id="charge-timeline"),
                width="100%",
                spacing="3",
            ),
        ),
        refund_dialog(),
    )
