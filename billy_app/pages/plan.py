"""`/settings/plan`: which plan the organisation is on, and (for the Owner) choosing one."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import message_callout
from billy_app.components.page_frame import billy_page
from billy_app.state.plan import PlanState
from services.plans import PLANS

NOTES = {
    "starter": "Up to 3 members. No exports.",
    "pro": "Up to 10 members. Export reports.",
    "business": "Unlimited members. Exports and custom roles.",
}


def plan_card(key: str) -> rx.Component:
    plan = PLANS[key]
    return rx.card(
        rx.vstack(
            rx.hstack(rx.heading(plan.label, size="4"), rx.cond(PlanState.plan == key, rx.badge("Current"))),
            rx.text(NOTES[key], size="2"),
            rx.cond(
                PlanState.can_choose,
                rx.button(
                    f"Choose {plan.label}",
                    on_click=PlanState.choose(key),
                    id=f"choose-{key}",
                    variant=rx.cond(PlanState.plan == key, "soft", "solid"),
                ),
            ),
            spacing="2",
        ),
        width="16em",
    )


@billy_page("/settings/plan", "Settings · Plan", on_load=[PlanState.load])
def plan_page() -> rx.Component:
    return rx.fragment(
        message_callout(PlanState.message, PlanState.message_kind),
        rx.cond(
            PlanState.trial_over,
            rx.callout(
                "Your free trial ended on "
                + PlanState.trial_ends
                + ". Billy is read-only until the Owner chooses a plan.",
                color_scheme="amber",
                icon="clock",
                id="trial-over",
            ),
            rx.text("Trial until ", PlanState.trial_ends, ". No card needed.", size="2", color_scheme="gray"),
        ),
        rx.hstack(*[plan_card(key) for key in PLANS], spacing="4", wrap="wrap"),
        rx.cond(~PlanState.can_choose, rx.text("Only the Owner can change the plan.", size="2")),
    )
