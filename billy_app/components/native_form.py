"""A plain HTML form that the browser submits itself (no Reflex event).

Used for passwords and the Stripe key: what is typed goes straight to an HTTP route
and never through the websocket or Reflex state."""

from __future__ import annotations

import reflex as rx
from reflex_components_core.el.elements.base import BaseHTML


class NativeForm(BaseHTML):
    tag = "form"
    action: rx.Var[str]
    method: rx.Var[str]
    auto_complete: rx.Var[str]


native_form = NativeForm.create


def hidden(name: str, value: rx.Var[str] | str) -> rx.Component:
    return rx.el.input(type="hidden", name=name, value=value)


def posted_form(*fields: rx.Component, action: str, submit: str, submit_id: str) -> rx.Component:
    """Fields and a full-width submit button, posted natively to an HTTP route."""
    return native_form(
        rx.vstack(
            *fields,
            rx.button(submit, type="submit", size="3", width="100%", id=submit_id),
            spacing="3",
            width="100%",
        ),
        action=action,
        method="post",
        width="100%",
    )
