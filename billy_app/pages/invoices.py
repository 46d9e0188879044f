"""`/invoices`: every invoice from the store, overdue ones marked, filtered and paged."""

from __future__ import annotations

import reflex as rx

from billy_app.components import light
from billy_app.components.invoice_actions import (
    bulk_reminder_button,
    bulk_reminder_dialog,
    confirm_dialog,
    invoice_controls,
)
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
from billy_app.state.invoice_actions import InvoiceActionsState
from billy_app.state.invoices import STATUS_CHOICES, InvoicesState, InvoiceTableRow


def due_cell(invoice: rx.Var[InvoiceTableRow]) -> rx.Component:
    """The due date, and how late an overdue invoice is."""
    return light.stack(
        rx.cond(invoice.due != "", local_time(invoice.due), light.text("—")),
        rx.cond(invoice.overdue != "", light.text(invoice.overdue, size="1", color="red", class_name="days-overdue")),
    )


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
        Column("Total", lambda invoice: light.text(invoice.total, weight="medium")),
        Column("Still due", lambda invoice: invoice.remaining),
        Column("Due", due_cell),
        Column("Status", lambda invoice: colored_badge(invoice.state, invoice.status, STATUS_COLORS, "amber")),
        Column("", lambda invoice: invoice_controls(invoice.id, invoice.status, False)),
    ),
)


@billy_page(
    "/invoices", "Invoices", on_load=[InvoicesState.load, InvoicesState.follow, InvoiceActionsState.load_controls]
)
def invoices() -> rx.Component:
    return rx.fragment(
        rx.hstack(rx.spacer(), bulk_reminder_button(), width="100%"),
        list_page(INVOICES),
        confirm_dialog(),
        bulk_reminder_dialog(),
    )
