"""Rows of email + role to invite several people at once (wizard step 3, Invite Member)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import status_callout
from billy_app.state.team import TeamState


def role_options() -> rx.Component:
    """The roles a member can be given right now (custom ones too, on Business)."""
    return rx.select.content(
        rx.foreach(TeamState.role_choices, lambda choice: rx.select.item(choice["label"], value=choice["key"]))
    )


def _row(row: rx.Var[dict[str, str]], index: rx.Var[int]) -> rx.Component:
    return rx.hstack(
        rx.input(
            placeholder="name@company.com",
            type="email",
            value=row["email"],
            on_change=lambda email: TeamState.set_row_email(index, email),
            width="100%",
            class_name="invite-email",
            aria_label="Email address to invite",
        ),
        rx.select.root(
            rx.select.trigger(class_name="invite-role", aria_label="Role for this invite"),
            role_options(),
            value=row["role"],
            on_change=lambda role: TeamState.set_row_role(index, role),
        ),
        rx.icon_button(
            rx.icon("x", size=14),
            variant="ghost",
            color_scheme="gray",
            type="button",
            on_click=TeamState.remove_row(index),
            aria_label="Remove this row",
        ),
        width="100%",
        align="center",
    )


def invite_rows() -> rx.Component:
    return rx.vstack(
        rx.foreach(TeamState.invite_rows, _row),
        rx.hstack(
            rx.button(
                rx.icon("plus", size=14),
                "Add another",
                variant="soft",
                color_scheme="gray",
                type="button",
                on_click=TeamState.add_row,
            ),
            rx.spacer(),
            rx.button(
                rx.cond(TeamState.sending, rx.spinner(size="1")),
                "Send invites",
                on_click=TeamState.send_invites,
                disabled=TeamState.sending,
                id="send-invites",
            ),
            width="100%",
        ),
        rx.foreach(
            TeamState.invite_results,
            lambda result: status_callout(
                result.message, result.sent, "mail-check", size="1", width="100%", class_name="invite-result"
            ),
        ),
        rx.text("Each invite is a magic link, valid for 48 hours and usable once.", size="1", color_scheme="gray"),
        spacing="2",
        width="100%",
    )
