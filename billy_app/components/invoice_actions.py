"""Invoice controls (issue 12): per-invoice Send / Remind / Void / Mark uncollectible, each
behind a confirmation that says what happens; the "New invoice" dialog of the customer page;
and the invoices list's reminder run for every overdue invoice shown, with each result.

A control the member's role can never use is not rendered; one the plan or the Stripe key
blocks is shown disabled, with the reason beside the section. The services refuse either way.
"""

from __future__ import annotations

import reflex as rx

from billy_app.components.tables import colored_badge, small_gray
from billy_app.state.invoice_actions import (
    CURRENCY_CHOICES,
    DraftLine,
    InvoiceActionsState,
    NewInvoiceState,
    PriceOption,
    ReminderRow,
)

OUTCOME_COLORS = {"sent": "green", "already_sent": "gray", "no_email": "amber", "not_open": "gray"}
S = InvoiceActionsState


def _control(
    label: str, action: str, invoice_id: rx.Var[str], shown: rx.Var[bool], blocked: rx.Var[str], when: rx.Var[bool]
) -> rx.Component:
    """One small button that opens the confirmation of `action` for the invoice."""
    slug = action.replace("_", "-")
    return rx.cond(
        shown & when,
        rx.button(
            label,
            size="1",
            variant="soft",
            color_scheme="red" if action in ("void", "mark_uncollectible") else "blue",
            disabled=blocked != "",
            on_click=S.ask(action, invoice_id),
            class_name=f"invoice-{slug}",
            id=f"invoice-{slug}-" + invoice_id,
        ),
    )


def invoice_controls(invoice_id: rx.Var[str], status: rx.Var[str], sendable: rx.Var[bool] | bool) -> rx.Component:
    """The controls an invoice in `status` offers ("overdue" counts as open). `sendable`: Stripe
    emails it (collection by invoice) and it is a draft, open or uncollectible."""
    open_now = (status == "open") | (status == "overdue")
    send_when = sendable if isinstance(sendable, rx.Var) else rx.Var.create(sendable)
    return rx.hstack(
        _control("Send", "send", invoice_id, S.send_shown, S.send_blocked, send_when),
        _control("Remind", "remind", invoice_id, S.remind_shown, S.remind_blocked, open_now),
        _control("Void", "void", invoice_id, S.void_shown, S.void_blocked, open_now | (status == "uncollectible")),
        _control("Uncollectible", "mark_uncollectible", invoice_id, S.mark_shown, S.mark_blocked, open_now),
        spacing="1",
        wrap="wrap",
    )


def blocked_note() -> rx.Component:
    """Why invoice controls are disabled (the plan or the key), said once for the section."""
    reason = rx.cond(S.send_blocked != "", S.send_blocked, S.remind_blocked)
    return rx.cond(reason != "", small_gray(reason, id="invoice-controls-blocked"))


def confirm_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(S.confirm_title),
            rx.dialog.description(S.invoice_label, size="2", color_scheme="gray"),
            rx.vstack(
                rx.text(S.confirm_text, size="2", id="invoice-confirm-text"),
                rx.cond(
                    S.problem != "",
                    rx.callout(S.problem, color_scheme="red", icon="triangle-alert", id="invoice-action-problem"),
                ),
                rx.hstack(
                    rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray", on_click=S.close)),
                    rx.button(
                        rx.cond(S.submitting, rx.spinner(size="1")),
                        S.confirm_button,
                        on_click=S.confirm,
                        disabled=S.submitting,
                        color_scheme=rx.cond((S.action == "void") | (S.action == "mark_uncollectible"), "red", "blue"),
                        id="invoice-confirm",
                    ),
                    justify="end",
                    width="100%",
                ),
                spacing="3",
                margin_top="1em",
            ),
            max_width="32em",
        ),
        open=S.confirm_open,
        on_open_change=S.set_confirm_open,
    )


# --- many reminders -------------------------------------------------------------------------------


def reminder_result(row: rx.Var[ReminderRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row.invoice),
        rx.table.cell(colored_badge(row.outcome, row.outcome, OUTCOME_COLORS, "red")),
        rx.table.cell(rx.text(row.message, size="2")),
        class_name="reminder-result",
        custom_attrs={"data-outcome": row.outcome},
    )


def bulk_reminder_button() -> rx.Component:
    """On the invoices list: remind the customers of every overdue invoice shown."""
    return rx.cond(
        S.remind_shown,
        rx.button(
            rx.icon("mail", size=14),
            "Send reminders to the overdue invoices shown",
            variant="soft",
            on_click=S.ask_bulk,
            disabled=S.remind_blocked != "",
            id="remind-overdue",
            # Its words wrap on a phone instead of widening the page.
            max_width="100%",
            white_space="normal",
            height="auto",
            min_height="var(--space-6)",
        ),
    )


def bulk_reminder_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Send payment reminders"),
            rx.vstack(
                rx.cond(
                    S.bulk_done,
                    rx.text(S.bulk_summary, size="2", weight="medium", id="reminders-summary"),
                    rx.text(
                        "Billy emails the customer of each of the ",
                        S.bulk_count,
                        " overdue invoices shown a reminder: the amount still due, how many days it is overdue, "
                        "and the link to pay it. Each invoice gets its own result; customers without an email "
                        "address are listed, not skipped.",
                        size="2",
                    ),
                ),
                rx.cond(
                    S.problem != "",
                    rx.callout(S.problem, color_scheme="red", icon="triangle-alert", id="reminders-problem"),
                ),
                rx.cond(
                    S.bulk_results.length() > 0,
                    rx.table.root(
                        rx.table.body(rx.foreach(S.bulk_results, reminder_result)),
                        width="100%",
                        id="reminder-results",
                    ),
                ),
                rx.hstack(
                    rx.dialog.close(
                        rx.button(
                            rx.cond(S.bulk_done, "Close", "Cancel"),
                            variant="soft",
                            color_scheme="gray",
                            on_click=S.close_bulk,
                        )
                    ),
                    rx.cond(
                        ~S.bulk_done,
                        rx.button(
                            rx.cond(S.bulk_sending, rx.spinner(size="1")),
                            "Send ",
                            S.bulk_count,
                            " reminders",
                            on_click=S.send_bulk,
                            disabled=S.bulk_sending,
                            id="send-reminders",
                        ),
                    ),
                    justify="end",
                    width="100%",
                ),
                spacing="3",
                margin_top="1em",
            ),
            max_width="44em",
        ),
        open=S.bulk_open,
        on_open_change=S.set_bulk_open,
    )


# --- a new invoice --------------------------------------------------------------------------------

N = NewInvoiceState


def _draft_line(line: rx.Var[DraftLine], index: rx.Var[int]) -> rx.Component:
    return rx.hstack(
        rx.text(line.label, size="2"),
        rx.spacer(),
        rx.text(line.amount, size="2", weight="medium"),
        rx.icon_button(
            rx.icon("x", size=12),
            size="1",
            variant="ghost",
            color_scheme="gray",
            on_click=N.remove_line(index),
            aria_label="Remove this line",
            class_name="remove-invoice-line",
        ),
        width="100%",
        align="center",
        class_name="new-invoice-line",
    )


def _price_option(price: rx.Var[PriceOption]) -> rx.Component:
    return rx.select.item(price.label, value=price.id)


def _price_form() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.select.root(
                rx.select.trigger(placeholder="A price…", id="new-invoice-price", min_width="16em"),
                rx.select.content(rx.foreach(N.prices, _price_option)),
                name="price_id",
            ),
            rx.input(name="quantity", default_value="1", width="5em", input_mode="numeric", id="new-invoice-quantity"),
            rx.button("Add", type="submit", variant="soft", id="add-price-line"),
            align="center",
            spacing="2",
        ),
        on_submit=N.add_price_line,
        reset_on_submit=False,
    )


def _custom_form() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.input(name="description", placeholder="Description", width="14em", id="new-invoice-description"),
            rx.input(name="amount", placeholder="Amount, e.g. 120.00", width="9em", id="new-invoice-amount"),
            rx.select.root(
                rx.select.trigger(id="new-invoice-currency", min_width="5em"),
                rx.select.content(*[rx.select.item(c.upper(), value=c) for c in CURRENCY_CHOICES]),
                name="currency",
                value=N.currency,
                on_change=N.set_currency,
            ),
            rx.button("Add", type="submit", variant="soft", id="add-custom-line"),
            align="center",
            spacing="2",
            wrap="wrap",
        ),
        on_submit=N.add_custom_line,
        reset_on_submit=True,
    )


def new_invoice_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("New invoice"),
            rx.dialog.description(
                "A draft emailed to the customer for payment once you Send it from its row.",
                size="2",
                color_scheme="gray",
            ),
            rx.vstack(
                small_gray("Add a price"),
                rx.cond(N.prices.length() > 0, _price_form(), small_gray("No active one-time prices are synced.")),
                small_gray("Or a custom line"),
                _custom_form(),
                rx.cond(
                    N.lines.length() > 0,
                    rx.card(
                        rx.vstack(
                            rx.foreach(N.lines, _draft_line),
                            rx.divider(),
                            rx.hstack(
                                rx.text("Total", weight="bold"),
                                rx.spacer(),
                                rx.text(N.total, weight="bold", id="new-invoice-total"),
                                width="100%",
                            ),
                            width="100%",
                        ),
                        width="100%",
                    ),
                    small_gray("No lines yet."),
                ),
                rx.hstack(
                    rx.text("Due on", size="2"),
                    rx.input(type="date", value=N.due, on_change=N.set_due, id="new-invoice-due"),
                    align="center",
                ),
                rx.text_area(
                    default_value=N.memo,
                    on_blur=N.set_memo,
                    placeholder="Memo on the invoice (optional)",
                    max_length=500,
                    rows="2",
                    width="100%",
                    id="new-invoice-memo",
                ),
                rx.cond(
                    N.problem != "",
                    rx.callout(N.problem, color_scheme="red", icon="triangle-alert", id="new-invoice-problem"),
                ),
                rx.hstack(
                    rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray", on_click=N.close)),
                    rx.button(
                        rx.cond(N.saving, rx.spinner(size="1")),
                        "Create draft",
                        on_click=N.create,
                        disabled=N.saving | (N.lines.length() == 0),
                        id="create-invoice",
                    ),
                    justify="end",
                    width="100%",
                ),
                spacing="3",
                margin_top="1em",
                width="100%",
            ),
            max_width="40em",
        ),
        open=N.open,
        on_open_change=N.set_open,
    )


def invoices_header(customer_id: rx.Var[str]) -> rx.Component:
    """The customer page's "Invoices" heading with "New invoice", the controls' blocked reason,
    and the dialogs (they load which controls show when the section mounts)."""
    return rx.vstack(
        rx.hstack(
            rx.heading("Invoices", size="4"),
            rx.spacer(),
            rx.cond(
                S.create_shown,
                rx.button(
                    rx.icon("plus", size=14),
                    "New invoice",
                    size="2",
                    variant="soft",
                    disabled=S.create_blocked != "",
                    on_click=N.start(customer_id),
                    id="new-invoice",
                ),
            ),
            width="100%",
            align="center",
            on_mount=S.load_controls,
        ),
        blocked_note(),
        confirm_dialog(),
        new_invoice_dialog(),
        width="100%",
        spacing="1",
    )
