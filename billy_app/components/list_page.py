"""The list pages' frame (charges, subscriptions, invoices): filter bar, sort, export, pager, table.

Each list page is a `ListDescription`: its state (a `billy_app.state.list_page.ListPage`), its
filters and its columns; `list_page` builds the rest. The ids the browser tests use come from
the description's nouns: `#charges-table`, `.charge-row[data-charge=<id>]`, `#filter-<name>`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import reflex as rx

from billy_app.components import light
from billy_app.components.tables import header
from billy_app.state.list_page import SORT_CHOICES

# A `ListPage` state class (its vars are read as class attributes, so no narrower type helps here).
ListState = Any
# One of its rows inside `rx.foreach`: the page's row dataclass (`ChargeTableRow`, ...), read as `row.name`.
ListRow = rx.Var[Any]


def labelled(label: str, control: rx.Component, field_id: str | None = None) -> rx.Component:
    """A filter's small grey label over its control, tied to the field when it has an id."""
    props = {"as_": "label", "custom_attrs": {"htmlFor": field_id}} if field_id else {}
    return rx.vstack(rx.text(label, size="1", color_scheme="gray", **props), control, spacing="1")


@dataclass(frozen=True)
class ChoiceFilter:
    """A filter picked from a list; `choices` come from the state module (the first is "any")."""

    name: str
    label: str
    choices: Sequence[tuple[str, str]]

    def control(self, state: ListState) -> rx.Component:
        return labelled(
            self.label,
            rx.select.root(
                rx.select.trigger(id=f"filter-{self.name}", aria_label=self.label, min_width="11em"),
                rx.select.content(*[rx.select.item(text, value=key) for key, text in self.choices]),
                value=state.filters[self.name],
                on_change=lambda value: state.set_filter(self.name, value),
            ),
        )


@dataclass(frozen=True)
class TextFilter:
    """A typed filter: `input_type="date"` for a day picker."""

    name: str
    label: str
    width: str = "9em"
    placeholder: str | None = None
    input_type: str | None = None

    def control(self, state: ListState) -> rx.Component:
        props: dict[str, str] = {}
        if self.placeholder is not None:
            props["placeholder"] = self.placeholder
        if self.input_type is not None:
            props["type"] = self.input_type
        return labelled(
            self.label,
            rx.input(
                name=self.name,
                id=f"filter-{self.name}",
                value=state.filters[self.name],
                on_change=lambda value: state.set_filter(self.name, value),
                width=self.width,
                **props,
            ),
            field_id=f"filter-{self.name}",
        )


def date_filter(name: str, label: str) -> TextFilter:
    return TextFilter(name, label, width="10em", input_type="date")


CUSTOMER_FILTER = TextFilter("customer", "Customer", width="16em", placeholder="cus_… or email or name")


@dataclass(frozen=True)
class Column:
    """A table column: its header and what its cell shows for one row."""

    label: str
    cell: Callable[[ListRow], rx.Component | rx.Var]


@dataclass(frozen=True)
class ListDescription:
    """One list page. `item` names its rows (`.charge-row`, `data-charge` = the row's id) and
    `items` its table (`#charges-table`) and empty note; `row_data` adds `data-<key>` attributes."""

    state: ListState
    item: str
    items: str
    filters: Sequence[ChoiceFilter | TextFilter]
    columns: Sequence[Column]
    row_data: Sequence[str] = ()


def filter_bar(state: Any, *controls: rx.Component, note: rx.Component | None = None) -> rx.Component:
    """Filter controls with Apply and Clear; `state.problem` says why filters were not applied.
    Any state with `apply`, `clear` and `problem` (the audit log's too)."""
    return rx.form(
        rx.vstack(
            rx.flex(
                *controls,
                rx.hstack(
                    rx.button(rx.icon("filter", size=14), "Apply", type="submit", id="apply-filters"),
                    rx.button(
                        "Clear", type="button", variant="soft", color_scheme="gray", on_click=state.clear, id="clear"
                    ),
                    spacing="2",
                ),
                wrap="wrap",
                spacing="3",
                align="end",
            ),
            *([note] if note is not None else []),
            rx.cond(
                state.problem != "",
                rx.callout(state.problem, icon="triangle-alert", color_scheme="red", id="filter-problem", width="100%"),
            ),
            spacing="2",
            width="100%",
        ),
        on_submit=state.apply,
        reset_on_submit=False,
        width="100%",
    )


def sort_select(state: ListState) -> rx.Component:
    return rx.hstack(
        rx.text("Sort", size="2", color_scheme="gray"),
        rx.select.root(
            rx.select.trigger(id="sort", aria_label="Sort", min_width="10em"),
            rx.select.content(*[rx.select.item(text, value=key) for key, text in SORT_CHOICES]),
            value=state.sort,
            on_change=state.set_sort,
        ),
        align="center",
        spacing="2",
    )


def pager(state: Any, suffix: str = "") -> rx.Component:
    """Previous / next along the keyset pages, and which rows of how many; `suffix` keeps a
    second pager's ids apart. Any state with `page_number`, `has_next`, `range_label`,
    `previous_page` and `next_page` (customers too)."""
    return rx.hstack(
        rx.button(
            "Previous",
            variant="soft",
            on_click=state.previous_page,
            disabled=state.page_number <= 1,
            id=f"prev-page{suffix}",
        ),
        rx.text("Page ", state.page_number, size="2", id=f"page-number{suffix}"),
        rx.button("Next", variant="soft", on_click=state.next_page, disabled=~state.has_next, id=f"next-page{suffix}"),
        rx.text(state.range_label, size="2", color_scheme="gray", id=f"list-range{suffix}"),
        align="center",
        spacing="3",
        wrap="wrap",
    )


def export_button(state: Any, on_click: Any, element_id: str, busy: Any = None) -> rx.Component:
    """Export CSV (the UI rule): hidden when the member's role can never export; shown disabled,
    with the reason beside it, when the plan blocks it; "Preparing…" while the ticket is made
    (the browser then shows the download's own progress). Any state with `export_shown`,
    `export_blocked` and `exporting` (lists, customers, the dashboard)."""
    busy = state.exporting if busy is None else busy
    return rx.cond(
        state.export_shown,
        rx.hstack(
            rx.button(
                rx.cond(busy, rx.spinner(size="1"), rx.icon("download", size=14)),
                rx.cond(busy, "Preparing…", "Export CSV"),
                variant="soft",
                type="button",
                on_click=on_click,
                disabled=(state.export_blocked != "") | busy,
                id=element_id,
            ),
            rx.cond(
                state.export_blocked != "",
                rx.text(state.export_blocked, size="1", color_scheme="gray", class_name="export-blocked"),
            ),
            align="center",
            spacing="2",
        ),
    )


def customer_cell(row: ListRow) -> rx.Component:
    """The customer's name (or email), linking to their page when the row has one."""
    return light.stack(
        rx.cond(
            row.customer_id != "",
            rx.link(row.customer, href="/customers/" + row.customer_id, class_name="customer-link"),
            light.text(row.customer, size="2"),
        ),
        rx.cond(row.email != "", light.note(row.email)),
    )


def list_row(description: ListDescription, row: ListRow) -> rx.Component:
    attributes = {f"data-{description.item}": row.id, **{f"data-{key}": row[key] for key in description.row_data}}
    # Keyed by place (foreach's default), not by id: when a live refresh brings new charges to
    # the top, React then rewrites the rows' text in place; keyed by id it mounted a new row
    # (links, badges) per new charge, and five open pages painted a burst 2.5x slower (bench/burst).
    return light.row(
        *[light.cell(column.cell(row)) for column in description.columns],
        custom_attrs=attributes,
        class_name=f"{description.item}-row",
    )


def list_page(description: ListDescription) -> rx.Component:
    """The whole list page below the header: filters, sort and pager, the table, a second pager."""
    state = description.state
    return rx.fragment(
        filter_bar(state, *[each.control(state) for each in description.filters]),
        rx.hstack(
            sort_select(state),
            export_button(state, state.export, f"export-{description.items}"),
            rx.spacer(),
            pager(state),
            width="100%",
            align="center",
            wrap="wrap",  # a phone puts the pager on a line of its own
        ),
        rx.cond(state.error != "", rx.callout(state.error, color_scheme="red", icon="triangle-alert")),
        rx.table.root(
            header(*[column.label for column in description.columns]),
            rx.table.body(rx.foreach(state.rows, lambda row: list_row(description, row))),
            width="100%",
            id=f"{description.items}-table",
        ),
        rx.cond(
            (state.rows.length() == 0) & (state.error == ""),
            rx.text(f"No {description.items} match these filters.", color_scheme="gray"),
        ),
        pager(state, "-bottom"),
    )
