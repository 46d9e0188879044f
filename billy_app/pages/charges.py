"""`/charges`: every charge from the store, filtered, sorted and paged (keyset)."""

from __future__ import annotations

import reflex as rx

from billy_app.components import light
from billy_app.components.layout import local_time
from billy_app.components.list_page import (
    CUSTOMER_FILTER,
    ChoiceFilter,
    Column,
    ListDescription,
    TextFilter,
    customer_cell,
    date_filter,
    list_page,
)
from billy_app.components.page_frame import billy_page
from billy_app.components.refund_dialog import refund_dialog
from billy_app.components.tables import name_and_id, state_badge
from billy_app.state.charges import REASON_CHOICES, STATUS_CHOICES, ChargesState, ChargeTableRow
from billy_app.state.refund import RefundState


def status_cell(charge: rx.Var[ChargeTableRow]) -> rx.Component:
    return light.stack(
        state_badge(charge.state),
        rx.cond(charge.reason != "", light.text(charge.reason, size="1", color="red")),
        rx.cond(charge.failure != "", light.note(charge.failure)),
        gap="1",
    )


def refund_cell(charge: rx.Var[ChargeTableRow]) -> rx.Component:
    """The row's "Refund" (the same dialog as the charge page); the server still decides."""
    return rx.cond(
        ChargesState.refund_shown & charge.refundable,
        rx.button(
            "Refund",
            size="1",
            variant="soft",
            on_click=RefundState.start(charge.id),
            disabled=ChargesState.refund_blocked_by != "",
            title=ChargesState.refund_blocked_by,
            class_name="row-refund",
        ),
    )


CHARGES = ListDescription(
    state=ChargesState,
    item="charge",
    items="charges",
    filters=(
        TextFilter("q", "Search", width="13em", placeholder="Words, id, last 4, #order"),
        ChoiceFilter("status", "Status", STATUS_CHOICES),
        ChoiceFilter("reason", "Failure reason", REASON_CHOICES),
        date_filter("from", "From"),
        date_filter("to", "To"),
        TextFilter("min", "Amount from", width="7em", placeholder="10.00"),
        TextFilter("max", "Amount to", width="7em", placeholder="500.00"),
        TextFilter("currency", "Currency", width="5em", placeholder="USD"),
        CUSTOMER_FILTER,
    ),
    columns=(
        Column("Date", lambda charge: local_time(charge.created)),
        Column("Customer", customer_cell),
        Column(
            "Description",
            lambda charge: name_and_id(
                rx.link(
                    rx.cond(charge.description != "", charge.description, "Open charge"),
                    href="/charges/" + charge.id,
                    class_name="charge-link",
                ),
                charge.id,
            ),
        ),
        Column("Card", lambda charge: charge.card),
        Column("Amount", lambda charge: light.text(charge.amount, weight="medium")),
        Column("Status", status_cell),
        Column("", lambda charge: refund_cell(charge)),
    ),
    row_data=("state",),  # data-state: the badge's words, for scripts and benches reading the table
)


@billy_page("/charges", "Charges", on_load=[ChargesState.load, ChargesState.follow])
def charges() -> rx.Component:
    return rx.fragment(list_page(CHARGES), refund_dialog())
