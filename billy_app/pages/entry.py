"""`/` (routing), `/signup` and `/login`: posted natively to the HTTP routes."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import labelled_input
from billy_app.components.layout import card_page, message_callout
from billy_app.components.native_form import hidden, posted_form
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
        posted_form(
            labelled_input("Organisation name", "org_name", value=EntryState.org_name, max_length=120),
            rx.vstack(rx.text("Plan", size="2", weight="medium"), plan_choice(), spacing="1"),
            labelled_input("Work email", "email", input_type="email", value=EntryState.email, auto_complete="email"),
            labelled_input(
                f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
                "password",
                input_type="password",
                min_length=MIN_PASSWORD_LENGTH,
                auto_complete="new-password",
            ),
            action="/api/auth/signup",
            submit="Create account and start trial",
            submit_id="signup-submit",
        ),
    )


@rx.page(route="/login", title="Sign in · Agent Billy", on_load=EntryState.load_login)
def login() -> rx.Component:
    return card_page(
        rx.heading("Sign in to Billy", size="6"),
        message_callout(EntryState.message, EntryState.message_kind),
        posted_form(
            hidden("next", EntryState.next_path),
            labelled_input("Email", "email", input_type="email", value=EntryState.email, auto_complete="username"),
            labelled_input("Password", "password", input_type="password", auto_complete="current-password"),
            action="/api/auth/login",
            submit="Sign in",
            submit_id="login-submit",
        ),
        rx.link("Forgot your password?", href="/forgot", size="2"),
    )


@rx.page(route="/invite", title="Join your team · Agent Billy", on_load=EntryState.load_invite)
def invite() -> rx.Component:
    return card_page(
        rx.heading("Join your team on Billy", size="6"),
        message_callout(EntryState.message, EntryState.message_kind),
        rx.cond(
            EntryState.link_ok,
            rx.vstack(
                rx.text(
                    EntryState.invite_inviter,
                    " invited ",
                    rx.text.strong(EntryState.email),
                    " to ",
                    rx.text.strong(EntryState.org_name),
                    " as ",
                    rx.text.strong(EntryState.invite_role),
                    ".",
                    id="invite-summary",
                ),
                posted_form(
                    labelled_input("Your name", "name", value=EntryState.name, auto_complete="name", max_length=120),
                    labelled_input(
                        f"Choose a password (at least {MIN_PASSWORD_LENGTH} characters)",
                        "password",
                        input_type="password",
                        min_length=MIN_PASSWORD_LENGTH,
                        auto_complete="new-password",
                    ),
                    action="/api/invites/accept",
                    submit="Join and open Billy",
                    submit_id="accept-invite",
                ),
                spacing="3",
                width="100%",
            ),
            rx.link("Go to sign-in", href="/login"),
        ),
    )


@rx.page(route="/forgot", title="Forgot your password · Agent Billy", on_load=EntryState.load_forgot)
def forgot() -> rx.Component:
    return card_page(
        rx.heading("Forgot your password?", size="6"),
        rx.text(
            "Enter your email: if it belongs to an account, a link to choose a new password arrives there.", size="2"
        ),
        message_callout(EntryState.message, EntryState.message_kind),
        posted_form(
            labelled_input("Email", "email", input_type="email", auto_complete="username"),
            action="/api/auth/forgot",
            submit="Send the link",
            submit_id="forgot-submit",
        ),
        rx.link("Back to sign-in", href="/login"),
    )


@rx.page(route="/reset", title="Choose a new password · Agent Billy", on_load=EntryState.load_reset)
def reset() -> rx.Component:
    return card_page(
        rx.heading("Choose a new password", size="6"),
        message_callout(EntryState.message, EntryState.message_kind),
        rx.cond(
            EntryState.link_ok,
            posted_form(
                labelled_input(
                    f"New password (at least {MIN_PASSWORD_LENGTH} characters)",
                    "password",
                    input_type="password",
                    min_length=MIN_PASSWORD_LENGTH,
                    auto_complete="new-password",
                ),
                labelled_input("The same again", "password_again", input_type="password", auto_complete="new-password"),
                action="/api/auth/reset",
                submit="Save and sign in",
                submit_id="reset-submit",
            ),
            rx.link("Ask for a new link", href="/forgot"),
        ),
        rx.text("Saving signs you out everywhere else.", size="1", color_scheme="gray"),
    )
