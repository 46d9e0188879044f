"""`/` (routing), `/signup` and `/login`: posted natively to the HTTP routes."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import card_page, message_callout
from billy_app.components.native_form import hidden, native_form
from billy_app.state.entry import EntryState
from services.identity import MIN_PASSWORD_LENGTH
from services.plans import PLANS, TRIAL_DAYS

PLAN_NOTES = {
    "starter": "Up to 3 members",
    "pro": "Up to 10 members · exports",
    "business": "Unlimited members · custom roles",
}


@rx.page(route="/", title="Agent Billy", on_load=EntryState.route_visitor)
def index() -> rx.Component:
    return rx.center(rx.spinner(size="3"), min_height="100vh")


def field(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="2", weight="medium"), control, spacing="1", width="100%")


def plan_choice() -> rx.Component:
    return rx.radio_group.root(
        rx.vstack(
            *[
                rx.radio_group.item(
                    rx.hstack(
                        rx.text(plan.label, weight="bold"), rx.text(PLAN_NOTES[key], size="2", color_scheme="gray")
                    ),
                    value=key,
                    id=f"plan-{key}",
                )
                for key, plan in PLANS.items()
            ],
            spacing="2",
        ),
        name="plan",
        default_value=EntryState.plan,
        key=EntryState.plan,
    )


@rx.page(route="/signup", title="Create your Billy account", on_load=EntryState.load_signup)
def signup() -> rx.Component:
    return card_page(
        rx.heading("Create your account", size="6"),
        rx.text(
            "Step 1 of 3 · Your plan starts with a ",
            rx.text.strong(f"{TRIAL_DAYS}-day free trial"),
            ". No card needed.",
            size="2",
            color_scheme="gray",
        ),
        message_callout(EntryState.message, EntryState.message_kind),
        native_form(
            rx.vstack(
                field(
                    "Organisation name",
                    rx.input(
                        name="org_name",
                        default_value=EntryState.org_name,
                        key=EntryState.org_name,
                        required=True,
                        max_length=120,
                        id="org_name",
                        width="100%",
                    ),
                ),
                field("Plan", plan_choice()),
                field(
                    "Work email",
                    rx.input(
                        name="email",
                        type="email",
                        default_value=EntryState.email,
                        key=EntryState.email,
                        required=True,
                        auto_complete="email",
                        id="email",
                        width="100%",
                    ),
                ),
                field(
                    f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
                    rx.input(
                        name="password",
                        type="password",
                        required=True,
                        min_length=MIN_PASSWORD_LENGTH,
                        auto_complete="new-password",
                        id="password",
                        width="100%",
                    ),
                ),
                rx.button("Create account and start trial", type="submit", size="3", width="100%", id="signup-submit"),
                spacing="3",
                width="100%",
            ),
            action="/api/auth/signup",
            method="post",
        ),
    )


@rx.page(route="/login", title="Sign in · Agent Billy", on_load=EntryState.load_login)
def login() -> rx.Component:
    return card_page(
        rx.heading("Sign in to Billy", size="6"),
        message_callout(EntryState.message, EntryState.message_kind),
        native_form(
            rx.vstack(
                hidden("next", EntryState.next_path),
                field(
                    "Email",
                    rx.input(
                        name="email",
                        type="email",
                        default_value=EntryState.email,
                        key=EntryState.email,
                        required=True,
                        auto_complete="username",
                        id="email",
                        width="100%",
                    ),
                ),
                field(
                    "Password",
                    rx.input(
                        name="password",
                        type="password",
                        required=True,
                        auto_complete="current-password",
                        id="password",
                        width="100%",
                    ),
                ),
                rx.button("Sign in", type="submit", size="3", width="100%", id="login-submit"),
                spacing="3",
                width="100%",
            ),
            action="/api/auth/login",
            method="post",
        ),
    )
