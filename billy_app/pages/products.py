"""`/products`: the catalogue every member can read (products, their status and their prices in
words), searchable by name; Billing Managers and the Owner also create, rename, archive, restore
and price products here (see `billy_app.components.product_actions`)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.list_page import pager
from billy_app.components.page_frame import billy_page
from billy_app.components.product_actions import blocked_notes, catalog_dialogs, new_product_button, row_actions
from billy_app.components.tables import colored_badge, rows_table, small_gray
from billy_app.state.products import ProductsState, ProductTableRow

STATUS_COLORS = {"Active": "green", "Archived": "gray"}


def search_bar() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.input(
                name="q",
                placeholder="Search by product name",
                default_value=ProductsState.query,
                max_length=200,
                id="product-search",
                width="20em",
            ),
            rx.button(rx.icon("search", size=14), "Search", type="submit", id="product-search-submit"),
            rx.cond(
                ProductsState.query != "",
                rx.button(
                    "Clear",
                    variant="soft",
                    color_scheme="gray",
                    type="button",
                    on_click=ProductsState.clear_search,
                    id="product-search-clear",
                ),
            ),
            spacing="2",
        ),
        on_submit=ProductsState.search,
    )


def product_row(row: rx.Var[ProductTableRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(row.name, size="2", weight="medium", class_name="product-name"),
                rx.cond(row.description != "", small_gray(row.description)),
                small_gray(row.id),
                spacing="0",
            )
        ),
        rx.table.cell(colored_badge(row.status, row.status, STATUS_COLORS, "blue", class_name="product-status")),
        rx.table.cell(
            rx.cond(
                row.prices.length() > 0,
                rx.vstack(
                    rx.foreach(row.prices, lambda words: rx.text(words, size="2", class_name="product-price")),
                    spacing="0",
                ),
                small_gray("No prices yet"),
            )
        ),
        rx.table.cell(row_actions(row)),
        custom_attrs={"data-product": row.id},
        class_name="product-row",
    )


@billy_page("/products", "Products", on_load=[ProductsState.load, ProductsState.follow])
def products() -> rx.Component:
    return rx.fragment(
        rx.hstack(search_bar(), rx.spacer(), new_product_button(), width="100%", align="start"),
        rx.cond(
            ProductsState.error != "",
            rx.callout(ProductsState.error, color_scheme="red", id="products-error"),
        ),
        blocked_notes(),
        rows_table(
            ProductsState.rows,
            product_row,
            ("Product", "Status", "Prices", ""),
            empty=rx.text(
                rx.cond(
                    ProductsState.query != "",
                    "No product name contains that text.",
                    "No products yet.",
                ),
                color_scheme="gray",
                id="products-empty",
            ),
            id="products-table",
        ),
        pager(ProductsState),
        catalog_dialogs(),
    )
