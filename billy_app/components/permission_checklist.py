"""The six Stripe permissions Billy needs, each with its state: the wizard's step 2 and Settings →
Stripe connection show the same table (rows from `services.stripe_keys.checklist`)."""

from __future__ import annotations

import reflex as rx

# Each permission's state as an icon and a word (not an empty circle, which read as a radio button).
STATE_ICON = {
    "ok": ("circle-check", "green", "Granted"),
    "missing": ("circle-x", "red", "Missing"),
    "unknown": ("clock", "gray", "Checked on connect"),
}


def _state(icon: str, color: str, words: str) -> rx.Component:
    return rx.hstack(
        rx.icon(icon, color=f"var(--{color}-11)", size=16),
        rx.text(words, size="1", color_scheme=color, white_space="nowrap"),
        spacing="1",
        align="center",
        class_name="permission-state",
    )


def permission_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.match(
                row["state"],
                *[(k, _state(*parts)) for k, parts in STATE_ICON.items()],
                _state(*STATE_ICON["unknown"]),
            )
        ),
        rx.table.cell(row["resource"]),
        rx.table.cell(row["access"]),
        custom_attrs={"data-state": row["state"]},
        class_name="permission-row",
    )


def permissions_table(rows: rx.Var[list[dict[str, str]]], table_id: str = "permission-checklist") -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                rx.table.column_header_cell("Status"),
                rx.table.column_header_cell("Resource"),
                rx.table.column_header_cell("Permission"),
            )
        ),
        rx.table.body(rx.foreach(rows, permission_row)),
        size="1",
        width="100%",
        id=table_id,
    )
