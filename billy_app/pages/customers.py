"""`/customers`: search by email or name; `/customers/[customer_id]`: one customer, their charges,
and "Edit customer" for the fields the member's role may change."""

from __future__ import annotations

import reflex as rx

from billy_app.components import light
from billy_app.components.customer_form import customer_edit_dialog, edit_customer_button
from billy_app.components.customer_sections import customer_sections, customer_trail
from billy_app.components.layout import local_time
from billy_app.components.list_page import export_button, pager
from billy_app.components.page_frame import billy_page
from billy_app.components.refund_dialog import refund_dialog
from billy_app.components.tables import Row, charge_cells, rows_table, small_gray
from billy_app.state.customer import CustomerState
from billy_app.state.customers import CustomersState
from billy_app.state.refund import RefundState
from billy_app.state.view import CustomerChargeRow


def search_bar() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.input(
                name="q",
                placeholder="Search by email or name",
                default_value=CustomersState.query,
                id="customer-search",
                aria_label="Search customers by email or name",
                width="100%",
                max_width="24em",
            ),
            rx.button(rx.icon("search", size=14), "Search", type="submit", id="customer-search-submit"),
            rx.cond(
                CustomersState.query != "",
                rx.button(
                    "Clear", variant="soft", color_scheme="gray", type="button", on_click=CustomersState.clear_search
                ),
            ),
            spacing="2",
            width="100%",
        ),
        on_submit=CustomersState.search,
    )


def customer_row(customer: Row) -> rx.Component:
    return light.row(
        light.cell(rx.link(customer["name"], href="/customers/" + customer["id"], class_name="customer-link")),
        light.cell(customer["email"]),
        light.cell(local_time(customer["created"])),
        light.cell(light.note(customer["id"])),
    )


def found_by_note() -> rx.Component:
    """`/customers?q=…` (the global search's "See all"): whose words the list shows, and the way back."""
    return rx.cond(
        CustomersState.found_by != "",
        rx.callout(
            rx.hstack(
                rx.text(
                    "Every customer the search for ",
                    rx.code(CustomersState.found_by),
                    " finds (names and emails containing it, ids, saved cards).",
                ),
                rx.button(
                    "Show all customers",
                    size="1",
                    variant="soft",
                    type="button",
                    on_click=CustomersState.clear_search,
                    id="clear-found-by",
                ),
                align="center",
                spacing="3",
                wrap="wrap",
            ),
            icon="search",
            id="found-by",
        ),
    )


@billy_page("/customers", "Customers", on_load=[CustomersState.load])
def customers() -> rx.Component:
    return rx.fragment(
        rx.hstack(
            search_bar(),
            rx.spacer(),
            export_button(CustomersState, CustomersState.export, "export-customers"),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        found_by_note(),
        rx.cond(CustomersState.error != "", rx.callout(CustomersState.error, color_scheme="red")),
        rows_table(CustomersState.rows, customer_row, ("Name", "Email", "Customer since", "Id"), id="customers-table"),
        rx.cond(
            CustomersState.rows.length() == 0,
            rx.text("No customers match. Try the start of an email address or a name.", color_scheme="gray"),
        ),
        pager(CustomersState),
    )


def charge_row(charge: rx.Var[CustomerChargeRow]) -> rx.Component:
    return rx.table.row(
        *charge_cells(charge),
        rx.table.cell(small_gray(charge.refunds)),
        rx.table.cell(
            rx.cond(
                CustomerState.refund_shown & charge.refundable,
                rx.button(
                    "Refund",
                    size="1",
                    variant="soft",
                    on_click=RefundState.start(charge.id),
                    disabled=CustomerState.refund_blocked_by != "",
                    title=CustomerState.refund_blocked_by,
                    class_name="refund-button",
                ),
            ),
        ),
        custom_attrs={"data-charge": charge.id},
        class_name="charge-row",
    )


@billy_page(
    "/customers/[customer_id]",
    "Customer",
    on_load=[CustomerState.load, CustomerState.follow, CustomerState.refresh_cards],
)
def customer_detail() -> rx.Component:
    return rx.fragment(
        rx.link("← All customers", href="/customers"),
        rx.cond(CustomerState.error != "", rx.callout(CustomerState.error, color_scheme="red")),
        # The tab keeps the previous customer until this one has loaded: never show it (and its
        # buttons) under this customer's address; say what is happening instead.
        rx.cond(
            CustomerState.customer["id"] == CustomerState.router.page.params["customer_id"],
            _customer_shown(),
            rx.text("Opening this customer…", id="customer-opening", size="2", color_scheme="gray"),
        ),
        refund_dialog(),
        customer_edit_dialog(),
    )


def _customer_shown() -> rx.Component:
    return rx.fragment(
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.heading(CustomerState.customer["name"], size="5", id="customer-name"),
                    edit_customer_button(),
                    justify="between",
                    width="100%",
                ),
                rx.text(CustomerState.customer["email"], id="customer-email"),
                rx.cond(CustomerState.address != "", rx.text(CustomerState.address, size="2", color_scheme="gray")),
                rx.cond(CustomerState.phone != "", rx.text(CustomerState.phone, size="2", color_scheme="gray")),
                rx.cond(
                    CustomerState.description != "",
                    rx.text(CustomerState.description, size="2", id="customer-description-text"),
                ),
                rx.cond(
                    CustomerState.metadata != "",
                    rx.text(CustomerState.metadata, size="1", color_scheme="gray", id="customer-metadata-text"),
                ),
                rx.text(CustomerState.customer["id"], size="1", color_scheme="gray"),
                spacing="1",
            )
        ),
        customer_sections(),
        rx.heading("Charges", size="4"),
        rows_table(
            CustomerState.charges,
            charge_row,
            ("Date", "Description", "Card", "Amount", "Status", "Refunds", ""),
            id="charges-table",
        ),
        customer_trail(),
    )
