"""Labelled inputs for the natively posted forms (signup, sign-in, the Stripe key)."""

from __future__ import annotations

import reflex as rx

from services.identity import MIN_PASSWORD_LENGTH


def field_label(label: str | rx.Var[str], field_id: str) -> rx.Component:
    """A visible label tied to its field, so a click focuses the field and a screen reader names it."""
    return rx.text(label, as_="label", size="2", weight="medium", custom_attrs={"htmlFor": field_id})


def labelled_input(
    label: str, name: str, *, input_type: str = "text", value: rx.Var[str] | None = None, **props: object
) -> rx.Component:
    """An input whose value goes to the form post. `value` pre-fills it after a refused post
    (re-keyed so the browser shows the new default)."""
    if value is not None:
        props.update(default_value=value, key=value)
    props.setdefault("id", name)
    return rx.vstack(
        field_label(label, str(props["id"])),
        rx.input(name=name, type=input_type, required=True, width="100%", **props),
        spacing="1",
        width="100%",
    )


def new_password_input(label: str) -> rx.Component:
    """A password being chosen: "<label> (at least N characters)", offered the browser's new-password fill."""
    return labelled_input(
        f"{label} (at least {MIN_PASSWORD_LENGTH} characters)",
        "password",
        input_type="password",
        min_length=MIN_PASSWORD_LENGTH,
        auto_complete="new-password",
    )
