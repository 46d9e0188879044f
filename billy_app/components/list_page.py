"""Pieces of the list pages (charges, subscriptions, invoices): filter controls, sort, pager."""

from __future__ import annotations

from typing import Any

import reflex as rx

from billy_app.state.list_page import SORT_CHOICES


def labelled(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="1", color_scheme="gray"), control, spacing="1")


def choice_filter(state: Any, name: str, choices: list[tuple[str, str]], label: str) -> rx.Component:
    return labelled(
        label,
        rx.select.root(
            rx.select.trigger(id=f"filter-{name}", aria_label=label, min_width="11em"),
            rx.select.content(*[rx.select.item(text, value=key) for key, text in choices]),
            value=state.f[name],
            on_change=lambda v: state.set_filter(name, v),
        ),
    )


def text_filter(state: Any, name: str, label: str, *, width: str = "9em", **props: Any) -> rx.Component:
    return labelled(
        label,
        rx.input(
            name=name,
            id=f"filter-{name}",
            value=state.f[name],
            on_change=lambda v: state.set_filter(name, v),
            width=width,
            **props,
        ),
    )


def filter_bar(state: Any, *controls: rx.Component) -> rx.Component:
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


def sort_select(state: Any) -> rx.Component:
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
    """Previous / next along the keyset pages; `suffix` keeps a second pager's ids apart."""
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
        align="center",
        spacing="3",
    )


def customer_cell(row: rx.Var[dict[str, str]]) -> rx.Component:
    """The customer's name (or email), linking to their page when the row has one."""
    return rx.table.cell(
        rx.vstack(
            rx.cond(
                row["customer_id"] != "",
                rx.link(row["customer"], href="/customers/" + row["customer_id"], class_name="customer-link"),
                rx.text(row["customer"], size="2"),
            ),
            rx.cond(row["email"] != "", rx.text(row["email"], size="1", color_scheme="gray")),
            spacing="0",
        )
    )


def empty_note(state: Any, text: str) -> rx.Component:
    return rx.cond((state.rows.length() == 0) & (state.error == ""), rx.text(text, color_scheme="gray"))


def error_callout(state: Any) -> rx.Component:
    return rx.cond(state.error != "", rx.callout(state.error, color_scheme="red", icon="triangle-alert"))
