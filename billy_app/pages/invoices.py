"""`/invoices`: every invoice from the store, overdue ones marked, filtered and paged."""

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
from billy_app.state.invoices import STATUS_CHOICES, InvoicesState
from billy_app.state.session import SessionState

S = InvoicesState
STATUS_COLORS = {"paid": "green", "open": "blue", "overdue": "red", "draft": "gray", "void": "gray"}


def invoice_row(i: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(local_time(i["created"])),
        rx.table.cell(
            rx.vstack(
                rx.text(i["number"], size="2"),
                rx.text(i["id"], size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        customer_cell(i),
        rx.table.cell(rx.text(i["total"], weight="medium")),
        rx.table.cell(i["remaining"]),
        rx.table.cell(rx.cond(i["due"] != "", local_time(i["due"]), "—")),
        rx.table.cell(
            rx.badge(
                i["state"],
                color_scheme=rx.match(i["status"], *[(k, v) for k, v in STATUS_COLORS.items()], "amber"),
                variant="soft",
            )
        ),
        custom_attrs={"data-invoice": i["id"], "data-status": i["status"]},
        class_name="invoice-row",
    )


@rx.page(
    route="/invoices",
    title="Invoices · Agent Billy",
    on_load=[SessionState.require_member, InvoicesState.load, InvoicesState.follow],
)
def invoices() -> rx.Component:
    return shell(
        filter_bar(
            S,
            choice_filter(S, "status", STATUS_CHOICES, "Status"),
            text_filter(S, "from", "Created from", type="date", width="10em"),
            text_filter(S, "to", "Created to", type="date", width="10em"),
            text_filter(S, "customer", "Customer", placeholder="cus_… or email or name", width="16em"),
        ),
        rx.hstack(sort_select(S), rx.spacer(), pager(S), width="100%", align="center"),
        error_callout(S),
        rx.table.root(
            header("Created", "Number", "Customer", "Total", "Still due", "Due", "Status"),
            rx.table.body(rx.foreach(S.rows, invoice_row)),
            width="100%",
            id="invoices-table",
        ),
        empty_note(S, "No invoices match these filters."),
        pager(S, "-bottom"),
        title="Invoices",
    )
