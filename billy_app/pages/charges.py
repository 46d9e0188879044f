"""`/charges`: every charge from the store, filtered, sorted and paged (keyset)."""

from __future__ import annotations

import reflex as rx

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
from billy_app.components.tables import name_and_id, state_badge
from billy_app.state.charges import REASON_CHOICES, STATUS_CHOICES, ChargesState, ChargeTableRow


def status_cell(charge: rx.Var[ChargeTableRow]) -> rx.Component:
    return rx.vstack(
        state_badge(charge.state),
        rx.cond(charge.reason != "", rx.text(charge.reason, size="1", color_scheme="red")),
        rx.cond(charge.failure != "", rx.text(charge.failure, size="1", color_scheme="gray")),
        spacing="1",
    )


CHARGES = ListDescription(
    state=ChargesState,
    item="charge",
    items="charges",
    filters=(
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
        Column("Amount", lambda charge: rx.text(charge.amount, weight="medium")),
        Column("Status", status_cell),
    ),
)


@billy_page("/charges", "Charges", on_load=[ChargesState.load, ChargesState.follow])
def charges() -> rx.Component:
    return list_page(CHARGES)
