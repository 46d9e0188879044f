"""`/onboarding`: the set-up wizard's steps 2 (connect Stripe) and 3 (invite the team)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import labelled_input
from billy_app.components.invite_rows import invite_rows
from billy_app.components.layout import message_callout
from billy_app.components.native_form import native_form, posted_form
from billy_app.components.page_frame import Layout, billy_page
from billy_app.components.permission_checklist import permissions_table
from billy_app.state.onboarding import OnboardingState
from billy_app.state.team import TeamState
from services import sync
from services.stripe_keys import HOW_TO_CREATE

STEPS = ["Create account", "Connect Stripe", "Invite team"]


def stepper() -> rx.Component:
    def step(index: int, label: str) -> rx.Component:
        number = index + 1
        return rx.hstack(
            rx.badge(
                rx.cond(OnboardingState.step > number, rx.icon("check", size=12), str(number)),
                variant=rx.cond(OnboardingState.step == number, "solid", "soft"),
                radius="full",
            ),
            rx.text(label, size="2", weight=rx.cond(OnboardingState.step == number, "bold", "regular")),
            align="center",
            spacing="2",
        )

    return rx.hstack(*[step(index, label) for index, label in enumerate(STEPS)], spacing="4", wrap="wrap")


def recommended_permissions() -> rx.Component:
    """The reads beyond the six that make Billy fuller, each with what it unlocks (DESIGN, Sync)."""
    items = [
        (f"{r.collection.replace('_', ' ').capitalize()}: Read", r.unlocks)
        for r in sync.RESOURCES.values()
        if not r.required
    ] + [("Events: Read", "live updates without webhooks")]
    return rx.vstack(
        rx.text("Recommended as well (optional):", size="2", weight="medium"),
        *[rx.text(rx.text.strong(name), " shows ", what, ".", size="1") for name, what in items],
        spacing="1",
        id="recommended-permissions",
    )


def sandbox_offer() -> rx.Component:
    """Sandbox mode: one button that has the server connect its demo key. A plain form post
    (CSRF-checked like the key form), so the key itself never reaches this page."""
    return rx.cond(
        OnboardingState.demo_key_offered,
        rx.callout(
            rx.vstack(
                rx.text(
                    "This Billy runs against the local Stripe sandbox, not real Stripe. "
                    "Connect the sandbox's demo restricted key to try everything:"
                ),
                native_form(
                    rx.button("Use the sandbox's demo key", type="submit", size="2", variant="soft", id="use-demo-key"),
                    action="/api/onboarding/demo-key",
                    method="post",
                    id="demo-key-form",
                ),
                spacing="2",
            ),
            icon="flask-conical",
            color_scheme="blue",
            width="100%",
        ),
    )


def connect_step() -> rx.Component:
    return rx.vstack(
        rx.heading("Connect your Stripe account", size="5"),
        rx.text(
            "Billy works with a restricted key: it can do only what you allow, and your team never sees it. "
            "It is stored encrypted in Billy's secret store, never in the database or your browser.",
            size="2",
        ),
        rx.text(HOW_TO_CREATE, size="2", color_scheme="gray"),
        permissions_table(OnboardingState.checklist),
        recommended_permissions(),
        sandbox_offer(),
        posted_form(
            labelled_input(
                "Restricted key",
                "key",
                input_type="password",
                id="stripe-key",
                placeholder="rk_live_… or rk_test_…",
                auto_complete="off",
                spell_check=False,
            ),
            action="/api/onboarding/stripe-key",
            submit="Check and connect",
            submit_id="connect-key",
        ),
        spacing="3",
        width="100%",
    )


def invite_step() -> rx.Component:
    return rx.vstack(
        rx.heading("Invite your team", size="5"),
        rx.cond(  # said once: the connection's own message above says it when it has just happened
            OnboardingState.message == "",
            rx.text(
                "Stripe is connected (",
                OnboardingState.connected_mode,
                " mode, key ending ",
                rx.code(OnboardingState.connected_hint),
                ").",
                size="2",
            ),
        ),
        permissions_table(OnboardingState.checklist),
        rx.text(
            "Add your team: each person gets a magic-link email and is ready to work once they accept. "
            "You can also do this later from Settings → Team.",
            size="2",
        ),
        invite_rows(),
        rx.hstack(
            rx.button("Use another key", variant="soft", color_scheme="gray", on_click=OnboardingState.change_key),
            rx.spacer(),
            rx.button(
                rx.cond(TeamState.invited_someone, "Finish", "Skip for now, invite later"),
                on_click=OnboardingState.finish,
                id="finish-onboarding",
                size="3",
            ),
            width="100%",
        ),
        spacing="3",
        width="100%",
    )


@billy_page("/onboarding", "Set up", on_load=[OnboardingState.load], layout=Layout.CARD, width="40em")
def onboarding() -> rx.Component:
    return rx.fragment(
        rx.hstack(
            rx.heading("Welcome to Billy", size="6"),
            rx.spacer(),
            rx.badge(OnboardingState.plan_label, " trial until ", OnboardingState.trial_ends, id="trial-badge"),
            align="center",
            width="100%",
        ),
        stepper(),
        message_callout(OnboardingState.message, OnboardingState.message_kind),
        rx.cond(
            OnboardingState.is_owner,
            rx.cond(OnboardingState.step == 2, connect_step(), invite_step()),
            rx.text("Your Owner is finishing Billy's set-up. Please come back shortly."),
        ),
    )
