"""Small table pieces shared by the list pages."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time

STATE_COLORS = {"Succeeded": "green", "Failed": "red", "Refunded": "gray", "Pending": "amber"}


def header(*labels: str) -> rx.Component:
    return rx.table.header(rx.table.row(*[rx.table.column_header_cell(label) for label in labels]))


def state_badge(state: rx.Var[str]) -> rx.Component:
    return rx.badge(
        state,
        color_scheme=rx.match(state, *[(k, v) for k, v in STATE_COLORS.items()], "blue"),
        variant="soft",
    )


def charge_cells(charge: rx.Var[dict[str, str]]) -> list[rx.Component]:
    """Date, description, card, amount, state: the same on the dashboard and a customer's page."""
    return [
        rx.table.cell(local_time(charge["created"])),
        rx.table.cell(
            rx.vstack(
                rx.text(charge["description"], size="2"),
                rx.text(charge["id"], size="1", color_scheme="gray"),
                rx.cond(charge["failure"] != "", rx.text(charge["failure"], size="1", color_scheme="red")),
                spacing="0",
            )
        ),
        rx.table.cell(charge["card"]),
        rx.table.cell(rx.text(charge["amount"], weight="medium")),
        rx.table.cell(state_badge(charge["state"])),
    ]
