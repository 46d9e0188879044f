"""The customer page's sections beyond the charges: lifetime spend, payment methods,
subscriptions, invoices and Billy's own trail for the customer."""

from __future__ import annotations

import reflex as rx

from billy_app.components.invoice_actions import invoice_controls, invoices_header
from billy_app.components.layout import local_time
from billy_app.components.subscription_actions import manage_control_loader, manage_subscription
from billy_app.components.tables import colored_badge, rows_table, small_gray, timeline_line
from billy_app.state.customer import CustomerState
from billy_app.state.customer_overview import InvoiceRow, PaymentMethodRow, SpendRow, SubscriptionRow, TrailRow

SUBSCRIPTION_COLORS = {"active": "green", "trialing": "blue", "past_due": "red", "unpaid": "red", "canceled": "gray"}
OUTCOME_COLORS = {"ok": "gray", "denied": "red", "failed": "red"}


def spend_card(spend: rx.Var[SpendRow]) -> rx.Component:
    return rx.card(
        rx.vstack(
            small_gray(spend.currency),
            rx.text(spend.net, size="5", weight="bold"),
            small_gray(spend.detail),
            spacing="0",
        ),
        class_name="lifetime-spend",
    )


def payment_method_line(method: rx.Var[PaymentMethodRow]) -> rx.Component:
    return rx.hstack(
        rx.icon("credit-card", size=16),
        rx.text(method.label, size="2"),
        rx.cond(method.expires != "", small_gray("expires " + method.expires)),
        rx.cond(method.is_default, rx.badge("Default", color_scheme="green", variant="soft")),
        rx.cond(method.expired, rx.badge("Expired", color_scheme="red", variant="soft")),
        align="center",
        class_name="payment-method",
        custom_attrs={"data-default": rx.cond(method.is_default, "yes", "no")},
    )


def subscription_row(sub: rx.Var[SubscriptionRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(colored_badge(sub.status, sub.status_key, SUBSCRIPTION_COLORS, "amber")),
        rx.table.cell(rx.vstack(rx.text(sub.plan, size="2"), small_gray(sub.id), spacing="0")),
        rx.table.cell(
            rx.cond(sub.when != "", rx.vstack(small_gray(sub.when_label), local_time(sub.when), spacing="0"))
        ),
        rx.table.cell(manage_subscription(sub.id)),  # hidden for roles that may not manage subscriptions
        class_name="subscription-row",
    )


def invoice_row(invoice: rx.Var[InvoiceRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.vstack(rx.text(invoice.number, size="2"), small_gray(invoice.id), spacing="0")),
        rx.table.cell(invoice.status),
        rx.table.cell(rx.text(invoice.total, weight="medium")),
        rx.table.cell(invoice.remaining),
        rx.table.cell(rx.cond(invoice.due != "", local_time(invoice.due))),
        rx.table.cell(rx.cond(invoice.overdue != "", rx.text(invoice.overdue, color_scheme="red", size="2"))),
        rx.table.cell(invoice_controls(invoice.id, invoice.status_key, invoice.sendable)),
        class_name="invoice-row",
        custom_attrs={"data-invoice": invoice.id},
    )


def trail_line(entry: rx.Var[TrailRow]) -> rx.Component:
    return timeline_line(
        entry.at, entry.sentence, entry.source, entry.outcome, OUTCOME_COLORS, class_name="trail-entry"
    )


def customer_sections() -> rx.Component:
    """Spend, payment methods, subscriptions and invoices, shown above the charges."""
    return rx.vstack(
        rx.cond(
            CustomerState.lifetime.length() > 0,
            rx.hstack(rx.foreach(CustomerState.lifetime, spend_card), wrap="wrap", id="lifetime-spend"),
        ),
        rx.heading("Payment methods", size="4"),
        rx.cond(
            CustomerState.payment_methods.length() > 0,
            rx.vstack(rx.foreach(CustomerState.payment_methods, payment_method_line), id="payment-methods"),
            small_gray("No saved payment methods."),
        ),
        rx.heading("Subscriptions", size="4"),
        manage_control_loader(),
        rows_table(
            CustomerState.subscriptions,
            subscription_row,
            ("Status", "Plan", "Next", ""),
            empty=small_gray("No subscriptions."),
            id="customer-subscriptions",
        ),
        invoices_header(CustomerState.customer["id"]),
        rows_table(
            CustomerState.invoices,
            invoice_row,
            ("Invoice", "Status", "Total", "Left to pay", "Due", "", ""),
            empty=small_gray("No invoices."),
            id="customer-invoices",
        ),
        width="100%",
        spacing="3",
    )


def customer_trail() -> rx.Component:
    """What Billy's members did to this customer and their charges, newest first."""
    return rx.vstack(
        rx.heading("Activity in Billy", size="4"),
        rx.cond(
            CustomerState.trail.length() > 0,
            rx.card(rx.vstack(rx.foreach(CustomerState.trail, trail_line), width="100%"), id="customer-trail"),
            small_gray("Nobody has acted on this customer in Billy yet."),
        ),
        width="100%",
        spacing="2",
    )
