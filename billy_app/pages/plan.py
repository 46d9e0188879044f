"""`/settings/plan`: which plan the organisation is on, and (for the Owner) choosing one here, or,
on an instance the control plane provisioned, a link to its account page where the plan is paid for."""

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


def trial_line() -> rx.Component:
    """The trial's end: once passed, the services' notice (read-only, and where to choose a plan)."""
    return rx.cond(
        PlanState.trial_notice != "",
        rx.callout(PlanState.trial_notice, color_scheme="amber", icon="clock", id="trial-over"),
        rx.cond(
            PlanState.account_url != "",
            rx.cond(
                PlanState.plan_chosen,
                rx.fragment(),
                rx.text("Trial until ", PlanState.trial_ends, ".", size="2", color_scheme="gray", id="trial-ends"),
            ),
            rx.text("Trial until ", PlanState.trial_ends, ". No card needed.", size="2", color_scheme="gray"),
        ),
    )


def managed_on_account_page() -> rx.Component:
    """A provisioned instance: the plan is paid for in Billy's own Stripe account through the
    control plane, so the Owner gets a link there (same tab: it is the same customer's account)."""
    return rx.card(
        rx.vstack(
            rx.text("You are on the ", rx.text.strong(PlanState.plan_label), " plan.", id="plan-summary"),
            rx.cond(
                PlanState.can_manage,
                # A plain <a>, not the app's router: the account page is another site.
                rx.link(
                    "Manage plan and billing",
                    href=PlanState.account_url,
                    rel="noopener",
                    as_child=False,
                    id="manage-plan",
                ),
                rx.text("Only the Owner can change the plan.", size="2"),
            ),
            spacing="2",
        ),
        width="fit-content",
    )


@billy_page("/settings/plan", "Settings · Plan", on_load=[PlanState.load])
def plan_page() -> rx.Component:
    return rx.fragment(
        message_callout(PlanState.message, PlanState.message_kind),
        trial_line(),
        rx.cond(PlanState.account_url != "", managed_on_account_page()),
        rx.hstack(*[plan_card(key) for key in PLANS], spacing="4", wrap="wrap"),
        rx.cond(
            (PlanState.account_url == "") & ~PlanState.can_choose,
            rx.text("Only the Owner can change the plan.", size="2"),
        ),
    )
