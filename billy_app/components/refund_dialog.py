"""The refund dialog: full or partial, a reason, a plain-words preview, an optional note and
customer confirmation email, then confirm.

Over the caller's cap, Confirm gives way to a note and "Request approval" (the refund then
waits on the Refund requests page for someone whose cap covers it)."""

from __future__ import annotations

import reflex as rx

from billy_app.state.refund import RefundMode, RefundState
from services.billing import REFUND_REASONS


def cancel_button() -> rx.Component:
    return rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray", on_click=RefundState.close))


def approval_request_form() -> rx.Component:
    """Shown when only the caller's cap stands in the way: a note for whoever approves. A form,
    so the note reaches the server with the click, whole."""
    return rx.form(
        rx.vstack(
            rx.text(
                "Your limit does not cover this refund. Ask for approval: someone whose limit covers it "
                "approves or declines it, and the refund is made in their name.",
                size="2",
            ),
            rx.text_area(
                name="note",
                placeholder="Why should this refund be made? (required)",
                required=True,
                max_length=1000,
                rows="3",
                width="100%",
                id="refund-request-note",
            ),
            rx.hstack(
                cancel_button(),
                rx.button(
                    rx.cond(RefundState.submitting, rx.spinner(size="1")),
                    "Request approval",
                    type="submit",
                    disabled=RefundState.submitting,
                    id="request-approval",
                ),
                justify="end",
                width="100%",
            ),
            spacing="3",
            width="100%",
        ),
        on_submit=RefundState.request_approval,
        width="100%",
    )


def direct_refund_form() -> rx.Component:
    """Within the caller's cap: a note for the record and the customer email, then Confirm. The note is
    sent on blur, which comes before the Confirm click, so the click refunds with the whole note."""
    return rx.vstack(
        rx.text_area(
            default_value=RefundState.note,
            on_blur=RefundState.set_note,
            placeholder="Note for the record (optional): kept in the audit log and on the refund in Stripe",
            max_length=1000,
            rows="2",
            width="100%",
            id="refund-note",
        ),
        rx.hstack(
            rx.checkbox(
                "Email the customer a confirmation",
                checked=RefundState.email_customer,
                on_change=RefundState.set_email_customer,
                disabled=RefundState.customer_email == "",
                id="refund-email-customer",
            ),
            rx.cond(
                RefundState.customer_email != "",
                rx.text("(" + RefundState.customer_email + ")", size="2", color_scheme="gray"),
            ),
            align="center",
            spacing="2",
        ),
        rx.cond(
            RefundState.no_email_reason != "",
            rx.text(RefundState.no_email_reason, size="1", color_scheme="gray", id="refund-no-email-reason"),
        ),
        rx.cond(
            RefundState.budget_left != "",
            rx.text("Today: " + RefundState.budget_left + ".", size="1", color_scheme="gray", id="refund-budget-left"),
        ),
        rx.hstack(
            cancel_button(),
            rx.button(
                rx.cond(RefundState.submitting, rx.spinner(size="1")),
                "Confirm refund",
                on_click=RefundState.confirm,
                disabled=RefundState.submitting | ~RefundState.allowed,
                color_scheme="red",
                id="confirm-refund",
            ),
            justify="end",
            width="100%",
        ),
        spacing="3",
        width="100%",
    )


def refund_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Refund a charge"),
            rx.dialog.description(RefundState.charge_label, size="2", color_scheme="gray"),
            rx.vstack(
                rx.segmented_control.root(
                    rx.segmented_control.item("Full refund", value=RefundMode.FULL),
                    rx.segmented_control.item("Partial", value=RefundMode.PARTIAL),
                    value=RefundState.mode,
                    # A lambda, as Reflex types this control's value `str | list[str]`: a single-choice
                    # control sends one item's value, and the gate refuses anything not a `RefundMode`.
                    on_change=lambda mode: RefundState.set_mode(mode),
                    id="refund-mode",
                ),
                rx.cond(
                    RefundState.mode == RefundMode.PARTIAL,
                    rx.input(
                        value=RefundState.amount_text,
                        on_change=RefundState.set_amount,  # a controlled input: Reflex debounces it (300 ms) already
                        placeholder="Amount, e.g. 10.00",
                        id="refund-amount",
                        input_mode="decimal",
                    ),
                ),
                rx.select.root(
                    rx.select.trigger(id="refund-reason", aria_label="Reason for the refund"),
                    rx.select.content(*[rx.select.item(label, value=key) for key, label in REFUND_REASONS.items()]),
                    value=RefundState.reason,
                    on_change=RefundState.set_reason,
                ),
                rx.cond(RefundState.summary != "", rx.callout(RefundState.summary, icon="info", id="refund-summary")),
                rx.cond(
                    RefundState.problem != "",
                    rx.callout(RefundState.problem, color_scheme="red", icon="triangle-alert", id="refund-problem"),
                ),
                rx.cond(RefundState.over_cap, approval_request_form(), direct_refund_form()),
                spacing="3",
                margin_top="1em",
            ),
            max_width="min(32em, calc(100vw - 2em))",  # whole on a phone too
            overflow_wrap="anywhere",
        ),
        open=RefundState.open,
        on_open_change=RefundState.set_open,
    )
