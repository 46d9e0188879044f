"""`/customers`: search by email or name; `/customers/[customer_id]`: one customer and their charges."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time, shell
from billy_app.components.refund_dialog import refund_dialog
from billy_app.components.tables import charge_cells, header
from billy_app.state.customer import CustomerState
from billy_app.state.customers import CustomersState
from billy_app.state.refund import RefundState
from billy_app.state.session import SessionState


def search_bar() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.input(
                name="q",
                placeholder="Search by email or name",
                default_value=CustomersState.query,
                id="customer-search",
                width="24em",
            ),
            rx.button(rx.icon("search", size=14), "Search", type="submit", id="customer-search-submit"),
            rx.cond(
                CustomersState.query != "",
                rx.button(
                    "Clear", variant="soft", color_scheme="gray", type="button", on_click=CustomersState.clear_search
                ),
            ),
            spacing="2",
        ),
        on_submit=CustomersState.search,
    )


def customer_row(c: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(c["name"], href="/customers/" + c["id"], class_name="customer-link")),
        rx.table.cell(c["email"]),
        rx.table.cell(local_time(c["created"])),
        rx.table.cell(rx.text(c["id"], size="1", color_scheme="gray")),
    )


@rx.page(
    route="/customers", title="Customers · Agent Billy", on_load=[SessionState.require_member, CustomersState.load]
)
def customers() -> rx.Component:
    return shell(
        search_bar(),
        rx.cond(CustomersState.error != "", rx.callout(CustomersState.error, color_scheme="red")),
        rx.table.root(
            header("Name", "Email", "Customer since", "Id"),
            rx.table.body(rx.foreach(CustomersState.rows, customer_row)),
            width="100%",
            id="customers-table",
        ),
        rx.cond(
            CustomersState.rows.length() == 0,
            rx.text("No customers match. Try the start of an email address or a name.", color_scheme="gray"),
        ),
        rx.hstack(
            rx.button(
                "Previous",
                variant="soft",
                on_click=CustomersState.previous_page,
                disabled=CustomersState.page_number <= 1,
                id="prev-page",
            ),
            rx.text("Page ", CustomersState.page_number, size="2"),
            rx.button(
                "Next",
                variant="soft",
                on_click=CustomersState.next_page,
                disabled=~CustomersState.has_next,
                id="next-page",
            ),
            align="center",
            spacing="3",
        ),
        title="Customers",
    )


def charge_row(c: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        *charge_cells(c),
        rx.table.cell(rx.text(c["refunds"], size="1", color_scheme="gray")),
        rx.table.cell(
            rx.cond(
                c["refundable"] == "yes",
                rx.button(
                    "Refund", size="1", variant="soft", on_click=RefundState.start(c["id"]), class_name="refund-button"
                ),
            ),
        ),
        custom_attrs={"data-charge": c["id"]},
        class_name="charge-row",
    )


@rx.page(
    route="/customers/[customer_id]",
    title="Customer · Agent Billy",
    on_load=[SessionState.require_member, CustomerState.load, CustomerState.follow],
)
def customer_detail() -> rx.Component:
    return shell(
        rx.link("← All customers", href="/customers"),
        rx.cond(CustomerState.error != "", rx.callout(CustomerState.error, color_scheme="red")),
        rx.card(
            rx.vstack(
                rx.heading(CustomerState.customer["name"], size="5", id="customer-name"),
                rx.text(CustomerState.customer["email"]),
                rx.cond(CustomerState.address != "", rx.text(CustomerState.address, size="2", color_scheme="gray")),
                rx.cond(CustomerState.phone != "", rx.text(CustomerState.phone, size="2", color_scheme="gray")),
                rx.text(CustomerState.customer["id"], size="1", color_scheme="gray"),
                spacing="1",
            )
        ),
        rx.heading("Charges", size="4"),
        rx.table.root(
            header("Date", "Description", "Card", "Amount", "Status", "Refunds", ""),
            rx.table.body(rx.foreach(CustomerState.charges, charge_row)),
            width="100%",
            id="charges-table",
        ),
        refund_dialog(),
        title="Customer",
    )
