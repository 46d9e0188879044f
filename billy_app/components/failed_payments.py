"""The failed-payments page's pieces: the period picker, a bar chart of failures by reason, the
four reason groups with their customers (a checkbox each, a "Repeat" badge), and the payment-update email dialog."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time
from billy_app.components.list_page import export_button
from billy_app.components.tables import column_header, rows_table, small_gray
from billy_app.state.failed_payments import (
    PERIOD_CHOICES,
    PLACEHOLDER_HELP,
    CustomerView,
    FailedPaymentsState,
    GroupView,
    RecipientView,
    ResultView,
)
from services.failed_payments import CUSTOM
from services.payment_update_mail import MAX_BODY, MAX_SUBJECT

S = FailedPaymentsState


def period_picker() -> rx.Component:
    """Presets, or whole days picked in the viewer's own zone (applied together)."""
    return rx.vstack(
        rx.hstack(
            rx.select.root(
                rx.select.trigger(id="failed-period", aria_label="Period"),
                rx.select.content(*[rx.select.item(label, value=key) for key, label in PERIOD_CHOICES]),
                value=S.preset,
                on_change=S.choose_preset,
            ),
            rx.text(S.period_label, size="2", color_scheme="gray", id="failed-period-label"),
            rx.spacer(),
            export_button(S, S.export, "export-failed-payments-period"),
            align="center",
            spacing="3",
            width="100%",
            wrap="wrap",
        ),
        rx.cond(
            S.preset == CUSTOM,
            rx.form(
                rx.hstack(
                    rx.input(type="date", name="first_day", default_value=S.first_day, id="failed-first-day"),
                    rx.text("to", size="2"),
                    rx.input(type="date", name="last_day", default_value=S.last_day, id="failed-last-day"),
                    rx.button("Show", type="submit", variant="soft", id="failed-apply-days"),
                    small_gray("Whole days in your time zone (" + S.zone + "), at most 366 days."),
                    align="center",
                    spacing="2",
                    wrap="wrap",
                ),
                on_submit=S.apply_days,
                reset_on_submit=False,
            ),
        ),
        spacing="2",
        width="100%",
    )


def summary() -> rx.Component:
    return rx.hstack(
        rx.heading(S.total_count, size="6", id="failed-total-count"),
        rx.text("failed payments", size="3"),
        rx.cond(S.total_text != "", rx.text("totaling ", S.total_text, size="3", id="failed-total-amount")),
        rx.text(
            "· ",
            S.customer_count,
            " customers, ",
            S.repeat_count,
            " repeat, ",
            S.no_email_count,
            " without an email address",
            size="2",
            color_scheme="gray",
            id="failed-customer-summary",
        ),
        align="baseline",
        spacing="2",
        wrap="wrap",
    )


def reason_chart() -> rx.Component:
    """Failures per reason as bars, above the reasons' tables; a screen reader hears the counts."""
    return rx.cond(
        S.total_count != "0",
        rx.card(
            rx.box(
                rx.recharts.bar_chart(
                    rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
                    rx.recharts.x_axis(data_key="reason"),
                    rx.recharts.y_axis(allow_decimals=False, width=40),
                    rx.recharts.graphing_tooltip(separator=": "),
                    rx.recharts.bar(data_key="failures", name="Failed payments", fill="var(--red-9)"),
                    data=S.reason_chart,
                    width="100%",
                    height=200,
                ),
                width="100%",
                id="failed-by-reason-chart",
                custom_attrs={"role": "img", "aria-label": S.reason_chart_label},
            ),
            width="100%",
        ),
    )


def customer_row(customer: rx.Var[CustomerView]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.checkbox(
                checked=S.selected.contains(customer.id),
                on_change=lambda checked: S.toggle(customer.id, checked),
                class_name="failed-select",
                aria_label="Choose " + customer.name,
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.link(customer.name, href="/customers/" + customer.id, class_name="customer-link"),
                rx.cond(
                    customer.email != "",
                    small_gray(customer.email),
                    rx.badge("No email on file", color_scheme="amber", variant="soft", class_name="no-email-badge"),
                ),
                spacing="1",
            )
        ),
        rx.table.cell(customer.count),
        rx.table.cell(customer.totals),
        rx.table.cell(small_gray(customer.failures)),
        rx.table.cell(rx.cond(customer.last_failed != "", local_time(customer.last_failed))),
        rx.table.cell(
            rx.cond(
                customer.repeat,
                rx.badge(
                    "Repeat · ",
                    customer.period_failures,
                    color_scheme="red",
                    variant="soft",
                    class_name="repeat-badge",
                ),
            )
        ),
        custom_attrs={"data-customer": customer.id, "data-repeat": rx.cond(customer.repeat, "yes", "")},
        class_name="failed-customer",
    )


def reason_group(group: rx.Var[GroupView]) -> rx.Component:
    """One reason: its count and totals, then its customers (this reason's failures only)."""
    rows = rx.foreach(S.customers, lambda c: rx.cond(c.reason == group.reason, customer_row(c)))
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(group.label, size="4"),
                rx.badge(group.count, variant="soft", class_name="failed-reason-count", size="2"),
                rx.text(group.totals, size="2", color_scheme="gray", class_name="failed-reason-totals"),
                align="center",
                spacing="3",
            ),
            rx.cond(
                group.count != "0",
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            *[
                                column_header("", "Chosen"),
                                *[
                                    column_header(label)
                                    for label in ("Customer", "Failures", "Amount", "Cards and amounts", "Latest", "")
                                ],
                            ]
                        )
                    ),
                    rx.table.body(rows),
                    size="1",
                    width="100%",
                ),
                rx.text("None in this period.", size="2", color_scheme="gray"),
            ),
            rx.cond(group.more != "", small_gray(group.more)),
            width="100%",
        ),
        custom_attrs={"data-reason": group.reason},
        class_name="failed-reason",
        width="100%",
    )


def email_control() -> rx.Component:
    """Shown to roles that may send (services.permissions.control); disabled with the reason
    when the plan or an ended trial blocks it, or until a customer is chosen."""
    return rx.cond(
        S.email_shown,
        rx.hstack(
            rx.button(
                rx.icon("mail", size=14),
                "Email selected customers… (",
                S.selected.length(),
                ")",
                on_click=S.open_email,
                disabled=(S.email_blocked != "") | (S.selected.length() == 0),
                id="email-selected-customers",
            ),
            rx.cond(S.selected.length() > 0, rx.button("Clear", variant="ghost", size="1", on_click=S.clear_selection)),
            rx.cond(S.email_blocked != "", small_gray(S.email_blocked, id="email-blocked")),
            align="center",
            spacing="2",
        ),
    )


def recipient_row(recipient: rx.Var[RecipientView]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(recipient.name, size="2")),
        rx.table.cell(
            rx.cond(
                recipient.email != "",
                rx.text(recipient.email, size="2"),
                rx.badge("No email on file", color_scheme="amber", variant="soft"),
            )
        ),
        rx.table.cell(rx.text(recipient.card, " · ", recipient.amount, size="2")),
        rx.table.cell(rx.cond(recipient.link != "", rx.text("Invoice link", size="2"), small_gray("No link"))),
        rx.table.cell(rx.cond(recipient.problem != "", rx.text(recipient.problem, size="1", color_scheme="amber"))),
        custom_attrs={"data-customer": recipient.id},
        class_name="email-recipient",
    )


def result_row(result: rx.Var[ResultView]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(result.name, size="2")),
        rx.table.cell(
            rx.text(result.message, size="2", color_scheme=rx.cond(result.sent, "green", "amber")),
        ),
        custom_attrs={"data-customer": result.id, "data-sent": rx.cond(result.sent, "yes", "")},
        class_name="email-result",
    )


def email_dialog() -> rx.Component:
    """The pre-filled subject and body, editable; the recipients; then each recipient's outcome."""
    form = rx.form(
        rx.vstack(
            rx.input(name="subject", default_value=S.subject, max_length=MAX_SUBJECT, width="100%", id="email-subject"),
            rx.text_area(
                name="body", default_value=S.body, max_length=MAX_BODY, rows="10", width="100%", id="email-body"
            ),
            small_gray("Filled in for each customer: " + PLACEHOLDER_HELP + "."),
            rx.hstack(
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray", on_click=S.close_dialog)),
                rx.button(
                    rx.cond(S.sending, rx.spinner(size="1")),
                    "Send emails",
                    type="submit",
                    disabled=S.sending,
                    id="send-payment-emails",
                ),
                justify="end",
                width="100%",
            ),
            spacing="3",
            width="100%",
        ),
        on_submit=S.send_emails,
        reset_on_submit=False,
        width="100%",
    )
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Ask customers to update their card"),
            rx.dialog.description(
                "Billy sends each customer their own email. Edit the words; keep the {placeholders}.",
                size="2",
                color_scheme="gray",
            ),
            rx.vstack(
                rows_table(S.recipients, recipient_row, ("Customer", "Email", "Card", "Link", ""), size="1"),
                rx.cond(
                    S.dialog_problem != "",
                    rx.callout(S.dialog_problem, color_scheme="red", icon="triangle-alert", id="email-problem"),
                ),
                rx.cond(
                    S.results.length() > 0,
                    rows_table(S.results, result_row, ("Customer", "Outcome"), size="1", id="email-results"),
                    form,
                ),
                rx.cond(
                    S.results.length() > 0,
                    rx.dialog.close(rx.button("Done", on_click=S.close_dialog, id="email-done")),
                ),
                spacing="3",
                margin_top="1em",
            ),
            max_width="48em",
        ),
        open=S.dialog_open,
        on_open_change=S.set_dialog_open,
    )
