"""`/` (routing), `/signup` and `/login`: posted natively to the HTTP routes."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import labelled_input, new_password_input
from billy_app.components.layout import message_callout
from billy_app.components.native_form import hidden, posted_form
from billy_app.components.page_frame import Audience, Layout, billy_page
from billy_app.state.entry import EntryState
from services.plans import PLANS, TRIAL_DAYS


def entry_message() -> rx.Component:
    return message_callout(EntryState.page_message, EntryState.message_kind)


@billy_page("/", on_load=[EntryState.route_visitor], audience=Audience.PUBLIC, layout=Layout.BARE)
def index() -> rx.Component:
    return rx.center(rx.spinner(size="3"), min_height="100vh")


def plan_choice() -> rx.Component:
    return rx.radio_group.root(
        rx.vstack(
            *[
                rx.radio_group.item(
                    rx.hstack(rx.text(plan.label, weight="bold"), rx.text(plan.limits, size="2", color_scheme="gray")),
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


@billy_page("/signup", "Create your account", on_load=[EntryState.load_signup], audience=Audience.PUBLIC)
def signup() -> rx.Component:
    return rx.fragment(
        rx.heading("Create your account", size="6"),
        rx.text(
            "Step 1 of 3 · Your plan starts with a ",
            rx.text.strong(f"{TRIAL_DAYS}-day free trial"),
            ". No card needed.",
            size="2",
            color_scheme="gray",
        ),
        entry_message(),
        posted_form(
            labelled_input("Organisation name", "org_name", value=EntryState.org_name, max_length=120),
            rx.vstack(rx.text("Plan", size="2", weight="medium"), plan_choice(), spacing="1"),
            labelled_input("Your name", "name", value=EntryState.name, max_length=120, auto_complete="name"),
            labelled_input("Work email", "email", input_type="email", value=EntryState.email, auto_complete="email"),
            new_password_input("Password"),
            action="/api/auth/signup",
            submit="Create account and start trial",
            submit_id="signup-submit",
        ),
    )


@billy_page("/login", "Sign in", on_load=[EntryState.load_login], audience=Audience.PUBLIC)
def login() -> rx.Component:
    return rx.fragment(
        rx.heading("Sign in to Billy", size="6"),
        entry_message(),
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


@billy_page("/invite", "Join your team", on_load=[EntryState.load_invite], audience=Audience.PUBLIC)
def invite() -> rx.Component:
    return rx.fragment(
        rx.heading("Join your team on Billy", size="6"),
        entry_message(),
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
                    new_password_input("Choose a password"),
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


@billy_page("/forgot", "Forgot your password", on_load=[EntryState.load_forgot], audience=Audience.PUBLIC)
def forgot() -> rx.Component:
    return rx.fragment(
        rx.heading("Forgot your password?", size="6"),
        rx.text(
            "Enter your email: if it belongs to an account, a link to choose a new password arrives there.", size="2"
        ),
        entry_message(),
        posted_form(
            labelled_input("Email", "email", input_type="email", auto_complete="username"),
            action="/api/auth/forgot",
            submit="Send the link",
            submit_id="forgot-submit",
        ),
        rx.link("Back to sign-in", href="/login"),
    )


@billy_page("/reset", "Choose a new password", on_load=[EntryState.load_reset], audience=Audience.PUBLIC)
def reset() -> rx.Component:
    return rx.fragment(
        rx.heading("Choose a new password", size="6"),
        entry_message(),
        rx.cond(
            EntryState.link_ok,
            posted_form(
                new_password_input("New password"),
                labelled_input("The same again", "password_again", input_type="password", auto_complete="new-password"),
                action="/api/auth/reset",
                submit="Save and sign in",
                submit_id="reset-submit",
            ),
            rx.link("Ask for a new link", href="/forgot"),
        ),
        rx.text("Saving signs you out everywhere else.", size="1", color_scheme="gray"),
    )
