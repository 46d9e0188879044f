"""The per-row "Manage" control of a subscription and its dialog: change price or quantity
(preview, then confirm), pause or resume collection, cancel at the period end or now, reactivate.

The control is hidden for roles that may not manage subscriptions and disabled, with the reason,
when the plan or the Stripe key blocks it. Each row renders its own dialog, open only while the
state holds that row's subscription, so the control drops into any table without a page edit.
"""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time
from billy_app.state.subscription_actions import PreviewRow, PriceOption, SubscriptionActionsState
from services.subscription_changes import PAUSE_BEHAVIORS

State = SubscriptionActionsState

CANCEL_WORDS = {
    "period_end": (
        "At the end of the period: it keeps running, already paid for, until the date below; then it ends and "
        "nothing more is billed. You can reactivate it until then."
    ),
    "now": (
        "Now: it ends at once. Stripe refunds nothing for the rest of the period and sends no final invoice "
        "(refund the last charge to give money back)."
    ),
}


def _blocked(reason: rx.Var[str]) -> rx.Component:
    return rx.text(reason, size="2", color_scheme="gray", class_name="sub-action-blocked")


def _busy_button(label: str, handler: rx.EventHandler, element_id: str, **props: object) -> rx.Component:
    return rx.button(
        rx.cond(State.busy, rx.spinner(size="1")), label, on_click=handler, disabled=State.busy, id=element_id, **props
    )


def _price_item(price: rx.Var[PriceOption]) -> rx.Component:
    return rx.select.item(price.label, value=price.id)


def _preview_line(row: rx.Var[PreviewRow]) -> rx.Component:
    return rx.hstack(
        rx.text(row.description, size="2", color_scheme=rx.cond(row.proration, "amber", "gray")),
        rx.spacer(),
        rx.text(row.amount, size="2", weight="medium"),
        width="100%",
        class_name="sub-preview-line",
    )


def change_section() -> rx.Component:
    return rx.cond(
        State.change_blocked != "",
        _blocked(State.change_blocked),
        rx.vstack(
            rx.select.root(
                rx.select.trigger(id="sub-change-price", width="100%"),
                rx.select.content(rx.foreach(State.prices, _price_item)),
                value=State.price_id,
                on_change=State.set_price,
            ),
            rx.hstack(
                rx.text("Quantity", size="2"),
                rx.input(
                    value=State.quantity_text,
                    on_change=State.set_quantity,  # not debounced: a quick "Preview" must see the last digit
                    input_mode="numeric",
                    width="6em",
                    id="sub-change-quantity",
                ),
                _busy_button("Preview", State.preview_change, "sub-preview-change", variant="soft"),
                align="center",
            ),
            rx.cond(
                State.previewed,
                rx.vstack(
                    rx.card(rx.vstack(rx.foreach(State.preview_rows, _preview_line), width="100%"), width="100%"),
                    rx.callout(State.preview_summary, icon="info", id="sub-preview"),
                    _busy_button("Confirm change", State.confirm_change, "sub-confirm-change"),
                    width="100%",
                ),
                rx.text(
                    "Preview first: Stripe shows what the customer will be charged or credited.",
                    size="1",
                    color_scheme="gray",
                ),
            ),
            width="100%",
        ),
    )


def pause_section() -> rx.Component:
    choices = [
        rx.hstack(
            rx.radio_group.item(value=behavior, id=f"sub-pause-{behavior}"),
            rx.text(words, size="2"),
            align="start",
        )
        for behavior, words in PAUSE_BEHAVIORS.items()
    ]
    return rx.vstack(
        rx.cond(
            State.resume_blocked == "",
            rx.vstack(
                rx.callout(State.paused, icon="pause", id="sub-paused"),
                _busy_button("Resume collection", State.resume, "sub-resume"),
            ),
        ),
        rx.cond(
            State.pause_blocked == "",
            rx.vstack(
                rx.text(
                    "The subscription stays active and keeps renewing; what changes is what happens to the "
                    "invoices renewals make while collection is paused:",
                    size="2",
                ),
                rx.radio_group.root(
                    rx.vstack(*choices, spacing="2"),
                    value=State.pause_behavior,
                    on_change=State.set_pause_behavior,
                    id="sub-pause-behavior",
                ),
                _busy_button("Pause collection", State.pause, "sub-pause"),
            ),
            rx.cond(State.resume_blocked != "", _blocked(State.pause_blocked)),
        ),
        width="100%",
    )


def cancel_section() -> rx.Component:
    return rx.vstack(
        rx.cond(
            State.reactivate_blocked == "",
            rx.vstack(
                rx.callout(
                    rx.hstack(rx.text("A cancellation is pending: it ends on"), local_time(State.ends_at)),
                    icon="calendar-x",
                ),
                _busy_button("Reactivate", State.reactivate, "sub-reactivate"),
            ),
        ),
        rx.cond(
            State.cancel_blocked != "",
            _blocked(State.cancel_blocked),
            rx.vstack(
                rx.radio_group.root(
                    rx.vstack(
                        rx.hstack(
                            rx.radio_group.item(
                                value="period_end",
                                disabled=State.end_of_period_blocked != "",
                                id="sub-cancel-period-end",
                            ),
                            rx.text("At the end of the period", size="2"),
                        ),
                        rx.hstack(rx.radio_group.item(value="now", id="sub-cancel-now"), rx.text("Now", size="2")),
                    ),
                    value=State.cancel_when,
                    on_change=State.set_cancel_when,
                    id="sub-cancel-when",
                ),
                rx.cond(
                    State.cancel_when == "period_end",
                    rx.vstack(
                        rx.text(CANCEL_WORDS["period_end"], size="2"),
                        rx.cond(State.period_end != "", local_time(State.period_end)),
                        rx.cond(State.end_of_period_blocked != "", _blocked(State.end_of_period_blocked)),
                    ),
                    rx.text(CANCEL_WORDS["now"], size="2", color_scheme="red"),
                ),
                _busy_button("Cancel subscription", State.cancel, "sub-cancel", color_scheme="red"),
            ),
        ),
        width="100%",
    )


def manage_dialog(subscription_id: rx.Var[str]) -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Manage subscription"),
            rx.dialog.description(State.plan + " · " + State.status, size="2", color_scheme="gray"),
            rx.vstack(
                rx.cond(
                    State.problem != "",
                    rx.callout(State.problem, color_scheme="red", icon="triangle-alert", id="sub-actions-problem"),
                ),
                rx.tabs.root(
                    rx.tabs.list(
                        rx.tabs.trigger("Price or quantity", value="change", id="sub-tab-change"),
                        rx.tabs.trigger("Pause", value="pause", id="sub-tab-pause"),
                        rx.tabs.trigger("Cancel", value="cancel", id="sub-tab-cancel"),
                    ),
                    rx.tabs.content(change_section(), value="change", padding_top="1em"),
                    rx.tabs.content(pause_section(), value="pause", padding_top="1em"),
                    rx.tabs.content(cancel_section(), value="cancel", padding_top="1em"),
                    default_value="change",
                    width="100%",
                ),
                rx.hstack(
                    rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray", on_click=State.close)),
                    justify="end",
                    width="100%",
                ),
                spacing="3",
                margin_top="1em",
            ),
            max_width="36em",
            id="subscription-actions",
        ),
        open=State.open & (State.subscription_id == subscription_id),
        on_open_change=State.set_open,
    )


def manage_control_loader() -> rx.Component:
    """Placed once beside a table of subscriptions: asks, when it mounts, whether this member
    sees the rows' "Manage" control (one event per page, not one per row)."""
    return rx.box(display="none", on_mount=State.load_control, id="manage-subscription-loader")


def manage_subscription(subscription_id: rx.Var[str]) -> rx.Component:
    """The row's control (hidden for roles that may not manage subscriptions) and its dialog."""
    button = rx.button(
        "Manage",
        size="1",
        variant="soft",
        on_click=State.open_for(subscription_id),
        disabled=State.blocked_by != "",
        class_name="manage-subscription",
        custom_attrs={"data-subscription": subscription_id},
    )
    return rx.fragment(
        rx.cond(
            State.can_manage,
            rx.fragment(
                rx.cond(
                    State.blocked_by != "",
                    rx.tooltip(rx.box(button, class_name="manage-blocked"), content=State.blocked_by),
                    button,
                ),
                manage_dialog(subscription_id),
            ),
        ),
    )
