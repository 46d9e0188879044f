"""`/onboarding`: the set-up wizard's steps 2 (connect Stripe) and 3 (invite the team)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import labelled_input
from billy_app.components.invite_rows import invite_rows
from billy_app.components.layout import message_callout
from billy_app.components.native_form import native_form, posted_form
from billy_app.components.page_frame import Layout, billy_page
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


def permissions_table() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                rx.table.column_header_cell("Status"),
                rx.table.column_header_cell("Resource"),
                rx.table.column_header_cell("Permission"),
            )
        ),
        rx.table.body(rx.foreach(OnboardingState.checklist, permission_row)),
        size="1",
        width="100%",
        id="permission-checklist",
    )


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
        permissions_table(),
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
        permissions_table(),
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
