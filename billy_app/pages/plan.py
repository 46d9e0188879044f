"""`/settings/plan`: which plan the organisation is on, and (for the Owner) choosing one."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import message_callout
from billy_app.components.page_frame import billy_page
from billy_app.state.plan import PlanState
from services.plans import PLANS


def plan_card(key: str) -> rx.Component:
    plan = PLANS[key]
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(plan.label, size="4"),
                rx.cond(PlanState.plan == key, rx.badge("Your plan", color_scheme="green", id="current-plan")),
            ),
            rx.text(plan.limits, size="2"),
            rx.cond(
                PlanState.can_choose,
                rx.cond(
                    PlanState.plan == key,
                    # The current plan is chosen already, unless it is still the trial's: then keep it.
                    rx.cond(
                        PlanState.plan_chosen,
                        rx.fragment(),
                        rx.button(
                            f"Keep {plan.label} after the trial", on_click=PlanState.choose(key), id=f"choose-{key}"
                        ),
                    ),
                    rx.button(
                        f"Switch to {plan.label}", on_click=PlanState.choose(key), id=f"choose-{key}", variant="soft"
                    ),
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
