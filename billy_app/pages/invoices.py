"""`/invoices`: every invoice from the store, overdue ones marked, filtered and paged."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time
from billy_app.components.list_page import (
    CUSTOMER_FILTER,
    ChoiceFilter,
    Column,
    ListDescription,
    customer_cell,
    date_filter,
    list_page,
)
from billy_app.components.page_frame import billy_page
from billy_app.components.tables import colored_badge, name_and_id
from billy_app.state.invoices import STATUS_CHOICES, InvoicesState

STATUS_COLORS = {"paid": "green", "open": "blue", "overdue": "red", "draft": "gray", "void": "gray"}

INVOICES = ListDescription(
    state=InvoicesState,
    item="invoice",
    items="invoices",
    row_data=("status",),
    filters=(
        ChoiceFilter("status", "Status", STATUS_CHOICES),
        date_filter("from", "Created from"),
        date_filter("to", "Created to"),
        CUSTOMER_FILTER,
    ),
    columns=(
        Column("Created", lambda invoice: local_time(invoice.created)),
        Column("Number", lambda invoice: name_and_id(invoice.number, invoice.id)),
        Column("Customer", customer_cell),
        Column("Total", lambda invoice: rx.text(invoice.total, weight="medium")),
        Column("Still due", lambda invoice: invoice.remaining),
        Column("Due", lambda invoice: rx.cond(invoice.due != "", local_time(invoice.due), "—")),
        Column("Status", lambda invoice: colored_badge(invoice.state, invoice.status, STATUS_COLORS, "amber")),
    ),
)


@billy_page("/invoices", "Invoices", on_load=[InvoicesState.load, InvoicesState.follow])
def invoices() -> rx.Component:
    return list_page(INVOICES)
