"""Small table pieces shared by the pages: headers, coloured badges, a name over its id."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import reflex as rx

from billy_app.components import light
from billy_app.components.layout import local_time
from billy_app.state.view import CustomerChargeRow

STATE_COLORS = {"Succeeded": "green", "Failed": "red", "Refunded": "gray", "Pending": "amber"}

# A row of a table whose state keeps it as a dict of texts (`row["name"]`). Rows with flags are
# dataclasses from the state layer instead, read as `row.name` (a flag is a boolean there).
Row = rx.Var[dict[str, str]]
RowType = TypeVar("RowType")


def column_header(label: str, unnamed: str = "Actions") -> rx.Component:
    """A column's header; a column without a visible title (its buttons, say) is still named for
    screen readers, so no header cell is empty."""
    return rx.table.column_header_cell(label or rx.el.span(unnamed, class_name="sr-only"))


def header(*labels: str) -> rx.Component:
    return rx.table.header(rx.table.row(*[column_header(label) for label in labels]))


def colored_badge(
    label: rx.Var[str], key: rx.Var[str], colors: Mapping[str, str], default: str, *, class_name: str = ""
) -> rx.Component:
    """A soft badge coloured by `key` (a status), e.g. green for "paid"; `default` for any other.
    Light (`light.badge`): tables show one a row."""
    return light.badge(label, rx.match(key, *colors.items(), default), class_name=class_name)


def state_badge(state: rx.Var[str]) -> rx.Component:
    return colored_badge(state, state, STATE_COLORS, "blue")


def small_gray(text: rx.Var[str] | rx.Component | str, **props: object) -> rx.Component:
    """Small grey text: ids, notes, secondary lines."""
    return rx.text(text, size="1", color_scheme="gray", **props)


def name_and_id(name: rx.Var[str] | rx.Component, row_id: rx.Var[str], *more: rx.Component) -> rx.Component:
    """A row's name (a description, a plan, a number) over its id in small grey, then any notes
    (light pieces: one a row)."""
    return light.stack(light.text(name, size="2") if isinstance(name, rx.Var) else name, light.note(row_id), *more)


def charge_cells(charge: rx.Var[CustomerChargeRow]) -> list[rx.Component]:
    """Date, description, card, amount, state: a charge's cells on a customer's page."""
    return [
        rx.table.cell(local_time(charge.created)),
        rx.table.cell(
            name_and_id(
                rx.link(
                    rx.cond(charge.description != "", charge.description, "Open charge"),
                    href="/charges/" + charge.id,
                    class_name="charge-link",
                ),
                charge.id,
                rx.cond(charge.failure != "", rx.text(charge.failure, size="1", color_scheme="red")),
            )
        ),
        rx.table.cell(charge.card),
        rx.table.cell(rx.text(charge.amount, weight="medium")),
        rx.table.cell(state_badge(charge.state)),
    ]


def rows_table(
    rows: rx.Var[list[RowType]],
    render_row: Callable[[rx.Var[RowType]], rx.Component],
    labels: Sequence[str],
    *,
    empty: rx.Component | None = None,
    **props: object,
) -> rx.Component:
    """A full-width table of `rows`, one `render_row` each under `labels`; `empty` in its place when none."""
    table = rx.table.root(header(*labels), rx.table.body(rx.foreach(rows, render_row)), width="100%", **props)
    return table if empty is None else rx.cond(rows.length() == 0, empty, table)


def confirm_dialog(
    trigger: str,
    question: Sequence[rx.Var[str] | str],
    description: str,
    confirm: str,
    on_confirm: object,
    *,
    ids: tuple[str, str] | None = None,
) -> rx.Component:
    """A small red button that asks `question` first: Keep, or `confirm`, which runs `on_confirm`.
    `ids`: the trigger's and the confirm button's element ids, where a test needs to find them."""
    trigger_id, confirm_id = ids or (None, None)
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button(trigger, size="1", variant="soft", color_scheme="red", id=trigger_id)),
        rx.alert_dialog.content(
            rx.alert_dialog.title(*question),
            rx.alert_dialog.description(description),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Keep", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(rx.button(confirm, color_scheme="red", on_click=on_confirm, id=confirm_id)),
                justify="end",
                spacing="2",
            ),
        ),
    )


def timeline_line(
    at: rx.Var[str], text: rx.Var[str], by: rx.Var[str], tone: rx.Var[str], colors: Mapping[str, str], **props: object
) -> rx.Component:
    """One line of a timeline or trail: when (in the viewer's zone), what, coloured by `tone`, and who."""
    return rx.hstack(
        rx.box(local_time(at), min_width="9em", font_size="0.85em", color="var(--gray-11)"),
        rx.text(text, size="2", color_scheme=rx.match(tone, *colors.items(), "gray")),
        rx.spacer(),
        small_gray(by),
        width="100%",
        **props,
    )
