"""`/search?q=…`: the global search's results, one section per kind, with how many; a charge opens
its own page, any other row its customer."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time
from billy_app.components.page_frame import billy_page
from billy_app.state.search import SearchState
from services.search import SEE_ALL_KINDS

SECTIONS = (
    ("customers", "Customers", SearchState.customers),
    ("charges", "Charges", SearchState.charges),
    ("invoices", "Invoices", SearchState.invoices),
    ("subscriptions", "Subscriptions", SearchState.subscriptions),
)


def hit_row(hit: rx.Var[dict[str, str]]) -> rx.Component:
    title = rx.cond(
        hit["href"] != "",
        rx.link(hit["title"], href=hit["href"], class_name="search-hit-link"),
        rx.text(hit["title"]),
    )
    return rx.table.row(
        rx.table.cell(rx.vstack(title, rx.text(hit["detail"], size="1", color_scheme="gray"), spacing="0")),
        rx.table.cell(rx.badge(hit["matched"], variant="soft", color_scheme="blue")),
        rx.table.cell(local_time(hit["created"])),
        rx.table.cell(rx.text(hit["id"], size="1", color_scheme="gray")),
        custom_attrs={"data-id": hit["id"]},
        class_name="search-hit",
    )


def section(kind: str, label: str, rows: rx.Var[list[dict[str, str]]]) -> rx.Component:
    return rx.cond(
        rows.length() > 0,
        rx.vstack(
            rx.hstack(
                rx.heading(label, size="4"),
                rx.badge(rows.length(), variant="surface"),
                rx.cond(
                    SearchState.more.contains(kind),
                    rx.text(
                        "More match: add to the search to narrow it"
                        + (", or see them all below." if kind in SEE_ALL_KINDS else "."),
                        size="1",
                        color_scheme="gray",
                    ),
                ),
                align="center",
                spacing="2",
            ),
            rx.table.root(
                rx.table.body(rx.foreach(rows, hit_row)),
                width="100%",
            ),
            width="100%",
            spacing="2",
            id=f"search-{kind}",
        ),
    )


@billy_page("/search", "Search", on_load=[SearchState.load])
def search_page() -> rx.Component:
    return rx.fragment(
        rx.cond(
            SearchState.query != "",
            rx.hstack(
                rx.text("Results for ", rx.code(SearchState.query), size="3"),
                rx.cond(SearchState.searched, rx.badge(SearchState.count_words, variant="surface", id="search-count")),
                rx.cond(SearchState.rule != "", rx.badge(SearchState.rule, variant="soft", color_scheme="gray")),
                align="center",
                spacing="2",
            ),
            rx.text(
                "Search by id (cus_, ch_, py_, pi_, in_, sub_, re_), the last 4 card digits, #order number, "
                "invoice number, or part of a name, email or charge description.",
                color_scheme="gray",
            ),
        ),
        rx.cond(SearchState.error != "", rx.callout(SearchState.error, color_scheme="amber", id="search-error")),
        *[section(kind, label, rows) for kind, label, rows in SECTIONS],
        rx.cond(
            SearchState.searched & (SearchState.error == "") & (SearchState.total == 0),
            rx.text("Nothing matches.", color_scheme="gray", id="search-empty"),
        ),
        see_all_links(),
    )


def see_all_links() -> rx.Component:
    """The results end with "See all N in Customers / Charges" for a group with more than it
    shows: the list narrowed to every match, which counts the same N."""
    return rx.hstack(
        rx.cond(
            SearchState.see_all_customers != "",
            rx.link(SearchState.see_all_customers, href=SearchState.see_all_customers_href, id="see-all-customers"),
        ),
        rx.cond(
            SearchState.see_all_charges != "",
            rx.link(SearchState.see_all_charges, href=SearchState.see_all_charges_href, id="see-all-charges"),
        ),
        spacing="4",
    )
