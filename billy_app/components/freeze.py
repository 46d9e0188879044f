"""The Owner's freeze controls (issue 15), one look wherever a member or an agent token is listed:
Spend controls, its alerts, Team and Agents."""

from __future__ import annotations

from typing import Any

import reflex as rx

FREEZE_HINT = "They keep reading; every change they or their agents ask for is refused"


def freeze_button(on_click: Any, **props: Any) -> rx.Component:
    return rx.button(
        "Freeze", size="1", variant="soft", color_scheme="red", title=FREEZE_HINT, on_click=on_click, **props
    )


def lift_button(on_click: Any, **props: Any) -> rx.Component:
    return rx.button("Lift the freeze", size="1", variant="soft", on_click=on_click, **props)


def frozen_badge() -> rx.Component:
    return rx.badge("frozen", color_scheme="blue", variant="soft")
