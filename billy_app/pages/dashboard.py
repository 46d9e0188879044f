"""`/dashboard`: the sync's progress, then MRR, revenue over a chosen period against the period
before, this week's failed payments, open and overdue invoices and the latest refunds. Key numbers
carry stable ids for tests: `#mrr`, `#revenue-net`, `#revenue-period`, `#revenue-change`,
`#failed-count`, `#repeat-count`, `#open-total`, `#overdue-total`."""

from __future__ import annotations

import reflex as rx

from billy_app.components.after_paint import after_paint
from billy_app.components.layout import local_time
from billy_app.components.list_page import export_button
from billy_app.components.page_frame import billy_page
from billy_app.components.tables import Row, rows_table, small_gray
from billy_app.state.dashboard import REVENUE_PERIOD_CHOICES, DashboardState, FailedCustomerRow


def stat(label: str | rx.Var[str], value: rx.Var, stat_id: str, note: rx.Component | str = "") -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(label, size="2", color_scheme="gray"),
            rx.heading(value, size="6", id=stat_id),
            note,
            spacing="1",
        ),
        min_width="12em",
    )


def resource_badge(resource: Row) -> rx.Component:
    return rx.badge(
        resource["resource"],
        ": ",
        resource["count"],
        " · ",
        resource["status"],
        color_scheme=rx.match(resource["status"], ("done", "green"), ("failed", "red"), "blue"),
        variant="soft",
        class_name="sync-resource",
        id=resource["dom_id"],
    )


def sync_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.cond(DashboardState.running, rx.spinner(size="2"), rx.icon("refresh-cw", size=16)),
                rx.heading(rx.cond(DashboardState.running, "Syncing from Stripe…", "Stripe sync"), size="3"),
                rx.spacer(),
                rx.text(DashboardState.total_stored, " objects", size="2", color_scheme="gray", id="sync-total"),
                rx.cond(
                    DashboardState.sync_shown,
                    rx.button(
                        "Sync now",
                        size="1",
                        variant="soft",
                        on_click=DashboardState.sync_now,
                        disabled=DashboardState.running | (DashboardState.sync_blocked != ""),
                        title=DashboardState.sync_blocked,
                        id="dashboard-sync-now",
                    ),
                ),
                align="center",
                width="100%",
            ),
            rx.hstack(rx.foreach(DashboardState.resources, resource_badge), spacing="2", wrap="wrap"),
            rx.cond(
                DashboardState.failed,
                rx.callout(
                    "Part of the sync failed; the rest of your data is up to date. Use “Sync now” to retry.",
                    color_scheme="red",
                    icon="triangle-alert",
                ),
            ),
            rx.cond(DashboardState.error != "", rx.callout(DashboardState.error, color_scheme="red")),
            spacing="3",
        ),
        id="sync-card",
    )


def headline() -> rx.Component:
    return rx.flex(
        stat("MRR", DashboardState.mrr_text, "mrr", small_gray("active and past-due subscriptions")),
        stat(
            "Net revenue, " + DashboardState.revenue_period_label.lower(),
            DashboardState.revenue_shown["net"],
            "revenue-net",
            small_gray(DashboardState.revenue_shown["code"]),
        ),
        stat(
            "Failed payments, 7 days",
            DashboardState.failed_count,
            "failed-count",
            rx.text(DashboardState.repeat_count, " repeat customers", size="1", color_scheme="gray", id="repeat-count"),
        ),
        stat("Open invoices", DashboardState.open_text, "open-total"),
        stat(
            "Overdue invoices",
            DashboardState.overdue_text,
            "overdue-total",
            rx.text(DashboardState.overdue_count, " overdue", size="1", color_scheme="gray", id="overdue-count"),
        ),
        spacing="4",
        wrap="wrap",
    )


def mrr_card(mrr: Row) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text("MRR · ", mrr["currency"], size="2", color_scheme="gray"),
            rx.heading(mrr["amount"], size="5", class_name="mrr-amount"),
            rx.text(mrr["subscriptions"], " subscriptions", size="1", color_scheme="gray"),
            rx.cond(mrr["past_due"] != "", rx.text(mrr["past_due"], size="1", color_scheme="amber")),
            spacing="1",
        ),
        custom_attrs={"data-currency": mrr["currency"]},
        class_name="mrr-card",
        min_width="12em",
    )


def mrr_cards() -> rx.Component:
    return rx.cond(
        DashboardState.mrr.length() > 1,
        rx.flex(rx.foreach(DashboardState.mrr, mrr_card), spacing="4", wrap="wrap"),
    )


def revenue_period_control() -> rx.Component:
    """7, 30 or 90 days, or month to date; the choice stays for the tab's session."""
    return rx.segmented_control.root(
        *[rx.segmented_control.item(label, value=key) for key, label in REVENUE_PERIOD_CHOICES],
        value=DashboardState.revenue_period,
        # A lambda, as Reflex types this control's value `str | list[str]`: a single-choice control
        # sends one item's value (the gate refuses anything but a string; the handler, any other).
        on_change=lambda period: DashboardState.choose_revenue_period(period),
        size="1",
        id="revenue-period",
        aria_label="Revenue period",
        max_width="100%",  # on a phone the choices scroll sideways rather than leave the card
        overflow_x="auto",
    )


def revenue_comparison() -> rx.Component:
    """The period's net, the period before's, and the change between them, in words."""
    shown = DashboardState.revenue_shown
    return rx.hstack(
        rx.text("Net ", shown["net"], size="2", weight="bold"),
        rx.text(
            "Previous: ",
            shown["previous"],
            " (",
            DashboardState.revenue_previous_label,
            ")",
            size="2",
            color_scheme="gray",
            id="revenue-previous",
        ),
        rx.badge(
            shown["change"],
            color_scheme=rx.match(shown["trend"], ("up", "green"), ("down", "red"), "gray"),
            variant="soft",
            id="revenue-change",
        ),
        spacing="3",
        align="center",
        wrap="wrap",
    )


def revenue_card() -> rx.Component:
    shown = DashboardState.revenue_shown
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Revenue, ", DashboardState.revenue_period_label.lower(), size="4"),
                rx.text(
                    DashboardState.revenue_since,
                    " (UTC days), refunds taken off",
                    size="1",
                    color_scheme="gray",
                ),
                rx.spacer(),
                revenue_period_control(),
                rx.cond(
                    DashboardState.revenue.length() > 1,
                    rx.select.root(
                        rx.select.trigger(id="chart-currency", aria_label="Currency"),
                        rx.select.content(
                            rx.foreach(
                                DashboardState.revenue,
                                lambda revenue: rx.select.item(revenue["code"], value=revenue["currency"]),
                            )
                        ),
                        value=DashboardState.chart_currency,
                        on_change=DashboardState.choose_chart_currency,
                    ),
                ),
                align="center",
                width="100%",
                spacing="3",
                wrap="wrap",
            ),
            rx.cond(
                DashboardState.revenue.length() > 0,
                rx.vstack(
                    # Outside the picture's box: a screen reader reads these words as they are.
                    revenue_comparison(),
                    rx.vstack(
                        revenue_chart(),
                        rx.hstack(
                            rx.text("Charges ", shown["gross"], size="2"),
                            rx.text("Refunds ", shown["refunded"], size="2"),
                            spacing="4",
                        ),
                        width="100%",
                        id="revenue-chart",
                        # The axis formats money in the chart's currency (read from here), and a screen
                        # reader hears what the picture shows.
                        custom_attrs={
                            "data-currency": DashboardState.chart_currency,
                            "role": "img",
                            "aria-label": "Net revenue per day, "
                            + DashboardState.revenue_period_label.lower()
                            + ", in "
                            + DashboardState.chart_currency.upper()
                            + ": "
                            + shown["net"]
                            + " in all, against "
                            + shown["previous"]
                            + " over the "
                            + DashboardState.revenue_previous_label
                            + " ("
                            + shown["change"]
                            + ").",
                        },
                    ),
                    width="100%",
                ),
                rx.text("No payments in this period or the one before.", color_scheme="gray", id="revenue-empty"),
            ),
            width="100%",
        ),
    )


CHART_HEIGHT = 260


def revenue_chart() -> rx.Component:
    """Net revenue per day as bars, the period before as a dashed line, drawn just after the
    numbers around it (`after_paint`: about a third of a warm load's rendering was the
    chart's). A box of its size holds its place meanwhile, so nothing below it moves."""
    return rx.cond(
        DashboardState.chart.length() > 0,
        after_paint(
            rx.recharts.composed_chart(
                rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
                # Fixed label steps (not Recharts' measured "preserveEnd"), and no
                # animation: the first paint is not held up by measuring every label, and
                # nothing moves for people who asked for less motion.
                rx.recharts.x_axis(data_key="day", interval=DashboardState.chart_day_step),
                rx.recharts.y_axis(tick_formatter=MONEY_TICK, width=80, interval=0),
                rx.recharts.graphing_tooltip(separator=": ", custom_attrs={"formatter": MONEY_TOOLTIP}),
                rx.recharts.legend(),
                rx.recharts.bar(
                    data_key="net",
                    name="Net revenue, " + DashboardState.revenue_period_label.lower(),
                    fill="var(--accent-9)",
                    is_animation_active=False,
                ),
                rx.recharts.line(
                    data_key="previous",
                    name="Net revenue, " + DashboardState.revenue_previous_label,
                    stroke="var(--gray-11)",  # muted beside the bars, legend still legible
                    stroke_dasharray="4 4",
                    stroke_width=2,
                    dot=False,
                    type_="linear",  # monotone curves overshoot below 0 between days
                    is_animation_active=False,
                ),
                data=DashboardState.chart,
                width="100%",
                height=CHART_HEIGHT,
            ),
            height=CHART_HEIGHT,
        ),
        rx.box(height=f"{CHART_HEIGHT}px", width="100%"),
    )


# Recharts takes a static JS function for ticks: it reads the currency the chart's box carries.
MONEY_TICK = (
    "(value) => { const box = document.getElementById('revenue-chart'); "
    "const currency = ((box && box.dataset.currency) || 'usd').toUpperCase(); "
    "return new Intl.NumberFormat('en-US', {style: 'currency', currency, maximumFractionDigits: 0}).format(value); }"
)
# The tooltip shows each value as the service formatted it (`net_text`, `previous_text`), and
# names the day of the period before that the line's point stands for.
MONEY_TOOLTIP = rx.Var(
    _js_expr="(value, name, item) => { const point = (item && item.payload) || {}; "
    "if (item && item.dataKey === 'previous') "
    "return [point.previous_text ?? value, name + ' (' + (point.previous_day ?? '') + ')']; "
    "return [point.net_text ?? value, name]; }"
)


def heading_with_link(title: str, link: str, href: str) -> rx.Component:
    return rx.hstack(
        rx.heading(title, size="4"), rx.link(link, href=href, size="2"), align="center", spacing="3", wrap="wrap"
    )


def report_export(report: str) -> rx.Component:
    """A section's Export CSV (failed payments, overdue invoices), as on the list pages."""
    return export_button(
        DashboardState,
        DashboardState.export_report(report),
        f"export-{report}",
        busy=DashboardState.exporting_report == report,
    )


def failed_reason(group: Row) -> rx.Component:
    return rx.box(
        rx.text(group["label"], size="2", color_scheme="gray"),
        rx.heading(group["count"], size="5", class_name="failed-reason-count"),
        small_gray(group["totals"]),
        custom_attrs={"data-reason": group["reason"]},
        class_name="failed-reason",
        min_width="9em",
    )


def failed_customer_row(customer: rx.Var[FailedCustomerRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.link(customer.customer, href="/customers/" + customer.id, class_name="customer-link"),
                rx.cond(customer.email != "", small_gray(customer.email)),
                spacing="0",
            )
        ),
        rx.table.cell(customer.reasons),
        rx.table.cell(customer.failures),
        rx.table.cell(
            rx.cond(
                customer.repeat,
                rx.badge("Repeat", color_scheme="red", variant="soft", class_name="repeat-badge"),
            )
        ),
        custom_attrs={"data-customer": customer.id, "data-repeat": rx.cond(customer.repeat, "yes", "")},
        class_name="failed-customer",
    )


def failed_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                heading_with_link("Failed payments, last 7 days", "See failed charges", "/charges?status=failed"),
                rx.link("Open the report", href="/failed-payments", size="2", id="failed-payments-report-link"),
                rx.spacer(),
                report_export("failed-payments"),
                width="100%",
                align="center",
                wrap="wrap",
            ),
            rx.flex(rx.foreach(DashboardState.failed_groups, failed_reason), spacing="5", wrap="wrap"),
            rx.cond(
                DashboardState.failed_customers.length() > 0,
                rows_table(
                    DashboardState.failed_customers,
                    failed_customer_row,
                    ("Customer", "Reasons", "Failures this week", ""),
                    size="1",
                    id="failed-customers",
                ),
            ),
            width="100%",
        ),
        id="failed-payments",
    )


def invoice_totals_row(totals: Row) -> rx.Component:
    return rx.table.row(
        rx.table.cell(totals["currency"]),
        rx.table.cell(totals["open"], " (", totals["open_count"], ")"),
        rx.table.cell(totals["not_due"], " (", totals["not_due_count"], ")"),
        rx.table.cell(
            rx.text(
                totals["overdue"],
                " (",
                totals["overdue_count"],
                ")",
                color_scheme=rx.cond(totals["overdue_count"] != "0", "red", "gray"),
            )
        ),
        custom_attrs={"data-currency": totals["currency"]},
        class_name="invoice-totals",
    )


def invoices_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                heading_with_link("Open invoices", "See overdue invoices", "/invoices?status=overdue"),
                rx.spacer(),
                report_export("overdue-invoices"),
                width="100%",
                align="center",
                wrap="wrap",
            ),
            rows_table(
                DashboardState.invoices,
                invoice_totals_row,
                ("Currency", "Open", "Not yet due", "Overdue"),
                empty=rx.text("No open invoices.", color_scheme="gray"),
                size="1",
            ),
            width="100%",
        ),
        id="open-invoices",
    )


def refund_row(refund: Row) -> rx.Component:
    return rx.table.row(
        rx.table.cell(local_time(refund["created"])),
        rx.table.cell(
            rx.cond(
                refund["customer_id"] != "",
                rx.link(refund["customer"], href="/customers/" + refund["customer_id"]),
                rx.text(refund["customer"]),
            )
        ),
        rx.table.cell(small_gray(refund["charge_id"])),
        rx.table.cell(rx.text(refund["amount"], weight="medium")),
        rx.table.cell(
            rx.vstack(
                rx.text(refund["status"], size="2"),
                rx.cond(refund["reason"] != "", small_gray(refund["reason"])),
                spacing="0",
            )
        ),
        custom_attrs={"data-refund": refund["id"]},
        class_name="refund-row",
    )


def refunds_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Recent refunds", size="4"),
            rows_table(
                DashboardState.refunds,
                refund_row,
                ("Date", "Customer", "Charge", "Amount", "Status"),
                empty=rx.text("No refunds yet.", color_scheme="gray"),
                size="1",
            ),
            width="100%",
        ),
        id="recent-refunds",
    )


@billy_page("/dashboard", "Dashboard", on_load=[DashboardState.load, DashboardState.follow])
def dashboard() -> rx.Component:
    return rx.fragment(
        sync_card(),
        rx.cond(
            DashboardState.report_error != "",
            rx.callout(DashboardState.report_error, color_scheme="red", icon="triangle-alert"),
        ),
        headline(),
        mrr_cards(),
        revenue_card(),
        rx.grid(failed_card(), invoices_card(), columns=rx.breakpoints(initial="1", lg="2"), spacing="4", width="100%"),
        refunds_card(),
    )
