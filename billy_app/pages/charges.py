"""`/charges`: every charge from the store, filtered, sorted and paged (keyset)."""

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
from billy_app.components.tables import header, state_badge
from billy_app.state.charges import REASON_CHOICES, STATUS_CHOICES, ChargesState
from billy_app.state.session import SessionState

S = ChargesState


def charge_row(c: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(local_time(c["created"])),
        customer_cell(c),
        rx.table.cell(
            rx.vstack(
                rx.text(c["description"], size="2"),
                rx.text(c["id"], size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        rx.table.cell(c["card"]),
        rx.table.cell(rx.text(c["amount"], weight="medium")),
        rx.table.cell(
            rx.vstack(
                state_badge(c["state"]),
                rx.cond(c["reason"] != "", rx.text(c["reason"], size="1", color_scheme="red")),
                rx.cond(c["failure"] != "", rx.text(c["failure"], size="1", color_scheme="gray")),
                spacing="1",
            )
        ),
        custom_attrs={"data-charge": c["id"]},
        class_name="charge-row",
    )


@rx.page(
    route="/charges",
    title="Charges · Agent Billy",
    on_load=[SessionState.require_member, ChargesState.load, ChargesState.follow],
)
def charges() -> rx.Component:
    return shell(
        filter_bar(
            S,
            choice_filter(S, "status", STATUS_CHOICES, "Status"),
            choice_filter(S, "reason", REASON_CHOICES, "Failure reason"),
            text_filter(S, "from", "From", type="date", width="10em"),
            text_filter(S, "to", "To", type="date", width="10em"),
            text_filter(S, "min", "Amount from", placeholder="10.00", width="7em"),
            text_filter(S, "max", "Amount to", placeholder="500.00", width="7em"),
            text_filter(S, "currency", "Currency", placeholder="USD", width="5em"),
            text_filter(S, "customer", "Customer", placeholder="cus_… or email or name", width="16em"),
        ),
        rx.hstack(sort_select(S), rx.spacer(), pager(S), width="100%", align="center"),
        error_callout(S),
        rx.table.root(
            header("Date", "Customer", "Description", "Card", "Amount", "Status"),
            rx.table.body(rx.foreach(S.rows, charge_row)),
            width="100%",
            id="charges-table",
        ),
        empty_note(S, "No charges match these filters."),
        pager(S, "-bottom"),
        title="Charges",
    )
