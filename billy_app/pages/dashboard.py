"""`/dashboard`: the sync's progress, then MRR, 30 days of revenue, this week's failed payments,
open and overdue invoices and the latest refunds. Key numbers carry stable ids for tests:
`#mrr`, `#revenue-net`, `#failed-count`, `#repeat-count`, `#open-total`, `#overdue-total`."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time, shell
from billy_app.components.tables import header
from billy_app.state.dashboard import DashboardState
from billy_app.state.session import SessionState

S = DashboardState


def stat(label: str, value: rx.Var, stat_id: str, note: rx.Component | str = "") -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(label, size="2", color_scheme="gray"),
            rx.heading(value, size="6", id=stat_id),
            note,
            spacing="1",
        ),
        min_width="12em",
    )


def sync_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.cond(S.running, rx.spinner(size="2"), rx.icon("refresh-cw", size=16)),
                rx.heading(rx.cond(S.running, "Syncing from Stripe…", "Stripe sync"), size="3"),
                rx.spacer(),
                rx.text(S.total_synced, " objects", size="2", color_scheme="gray"),
                rx.button("Sync now", size="1", variant="soft", on_click=S.sync_now, disabled=S.running),
                align="center",
                width="100%",
            ),
            rx.hstack(
                rx.foreach(
                    S.resources,
                    lambda r: rx.badge(
                        r["resource"],
                        ": ",
                        r["count"],
                        " · ",
                        r["status"],
                        color_scheme=rx.match(r["status"], ("done", "green"), ("failed", "red"), "blue"),
                        variant="soft",
                        class_name="sync-resource",
                    ),
                ),
                spacing="2",
                wrap="wrap",
            ),
            rx.cond(
                S.failed,
                rx.callout(
                    "Part of the sync failed; the rest of your data is up to date. Use “Sync now” to retry.",
                    color_scheme="red",
                    icon="triangle-alert",
                ),
            ),
            rx.cond(S.error != "", rx.callout(S.error, color_scheme="red")),
            spacing="3",
        ),
        id="sync-card",
    )


def headline() -> rx.Component:
    return rx.flex(
        stat(
            "MRR",
            S.mrr_text,
            "mrr",
            rx.text("active and past-due subscriptions", size="1", color_scheme="gray"),
        ),
        stat(
            "Net revenue, 30 days",
            S.revenue_shown["net"],
            "revenue-net",
            rx.text(S.revenue_shown["code"], size="1", color_scheme="gray"),
        ),
        stat(
            "Failed payments, 7 days",
            S.failed_count,
            "failed-count",
            rx.text(S.repeat_count, " repeat customers", size="1", color_scheme="gray", id="repeat-count"),
        ),
        stat("Open invoices", S.open_text, "open-total"),
        stat(
            "Overdue invoices",
            S.overdue_text,
            "overdue-total",
            rx.text(S.overdue_count, " overdue", size="1", color_scheme="gray", id="overdue-count"),
        ),
        spacing="4",
        wrap="wrap",
    )


def mrr_cards() -> rx.Component:
    return rx.cond(
        S.mrr.length() > 1,
        rx.flex(
            rx.foreach(
                S.mrr,
                lambda m: rx.card(
                    rx.vstack(
                        rx.text("MRR · ", m["currency"], size="2", color_scheme="gray"),
                        rx.heading(m["amount"], size="5", class_name="mrr-amount"),
                        rx.text(m["subscriptions"], " subscriptions", size="1", color_scheme="gray"),
                        rx.cond(m["past_due"] != "", rx.text(m["past_due"], size="1", color_scheme="amber")),
                        spacing="1",
                    ),
                    custom_attrs={"data-currency": m["currency"]},
                    class_name="mrr-card",
                    min_width="12em",
                ),
            ),
            spacing="4",
            wrap="wrap",
        ),
    )


def revenue_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Revenue, last 30 days", size="4"),
                rx.text("since ", S.revenue_since, " (UTC days), refunds taken off", size="1", color_scheme="gray"),
                rx.spacer(),
                rx.cond(
                    S.revenue.length() > 1,
                    rx.select.root(
                        rx.select.trigger(id="chart-currency", aria_label="Currency"),
                        rx.select.content(
                            rx.foreach(S.revenue, lambda r: rx.select.item(r["code"], value=r["currency"]))
                        ),
                        value=S.chart_currency,
                        on_change=S.choose_chart_currency,
                    ),
                ),
                align="center",
                width="100%",
                spacing="3",
            ),
            rx.cond(
                S.chart.length() > 0,
                rx.vstack(
                    rx.recharts.bar_chart(
                        rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
                        rx.recharts.x_axis(data_key="day"),
                        rx.recharts.y_axis(),
                        rx.recharts.graphing_tooltip(),
                        rx.recharts.bar(data_key="net", name="Net revenue", fill="var(--accent-9)"),
                        data=S.chart,
                        width="100%",
                        height=260,
                    ),
                    rx.hstack(
                        rx.text("Charges ", S.revenue_shown["gross"], size="2"),
                        rx.text("Refunds ", S.revenue_shown["refunded"], size="2"),
                        rx.text("Net ", S.revenue_shown["net"], size="2", weight="bold"),
                        spacing="4",
                    ),
                    width="100%",
                    id="revenue-chart",
                ),
                rx.text("No payments in the last 30 days.", color_scheme="gray"),
            ),
            width="100%",
        ),
    )


def failed_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Failed payments, last 7 days", size="4"),
                rx.link("See failed charges", href="/charges?status=failed", size="2"),
                align="center",
                spacing="3",
            ),
            rx.flex(
                rx.foreach(
                    S.failed_groups,
                    lambda g: rx.box(
                        rx.text(g["label"], size="2", color_scheme="gray"),
                        rx.heading(g["count"], size="5", class_name="failed-reason-count"),
                        rx.text(g["totals"], size="1", color_scheme="gray"),
                        custom_attrs={"data-reason": g["reason"]},
                        class_name="failed-reason",
                        min_width="9em",
                    ),
                ),
                spacing="5",
                wrap="wrap",
            ),
            rx.cond(
                S.failed_customers.length() > 0,
                rx.table.root(
                    header("Customer", "Reasons", "Failures this week", ""),
                    rx.table.body(
                        rx.foreach(
                            S.failed_customers,
                            lambda c: rx.table.row(
                                rx.table.cell(
                                    rx.vstack(
                                        rx.link(
                                            c["customer"], href="/customers/" + c["id"], class_name="customer-link"
                                        ),
                                        rx.cond(c["email"] != "", rx.text(c["email"], size="1", color_scheme="gray")),
                                        spacing="0",
                                    )
                                ),
                                rx.table.cell(c["reasons"]),
                                rx.table.cell(c["failures"]),
                                rx.table.cell(
                                    rx.cond(
                                        c["repeat"] == "yes",
                                        rx.badge(
                                            "Repeat", color_scheme="red", variant="soft", class_name="repeat-badge"
                                        ),
                                    )
                                ),
                                custom_attrs={"data-customer": c["id"], "data-repeat": c["repeat"]},
                                class_name="failed-customer",
                            ),
                        )
                    ),
                    width="100%",
                    size="1",
                    id="failed-customers",
                ),
            ),
            width="100%",
        ),
        id="failed-payments",
    )


def invoices_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Open invoices", size="4"),
                rx.link("See overdue invoices", href="/invoices?status=overdue", size="2"),
                align="center",
                spacing="3",
            ),
            rx.cond(
                S.invoices.length() > 0,
                rx.table.root(
                    header("Currency", "Open", "Not yet due", "Overdue"),
                    rx.table.body(
                        rx.foreach(
                            S.invoices,
                            lambda t: rx.table.row(
                                rx.table.cell(t["currency"]),
                                rx.table.cell(t["open"], " (", t["open_count"], ")"),
                                rx.table.cell(t["not_due"], " (", t["not_due_count"], ")"),
                                rx.table.cell(
                                    rx.text(
                                        t["overdue"],
                                        " (",
                                        t["overdue_count"],
                                        ")",
                                        color_scheme=rx.cond(t["overdue_count"] != "0", "red", "gray"),
                                    )
                                ),
                                custom_attrs={"data-currency": t["currency"]},
                                class_name="invoice-totals",
                            ),
                        )
                    ),
                    width="100%",
                    size="1",
                ),
                rx.text("No open invoices.", color_scheme="gray"),
            ),
            width="100%",
        ),
        id="open-invoices",
    )


def refunds_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Recent refunds", size="4"),
            rx.cond(
                S.refunds.length() > 0,
                rx.table.root(
                    header("Date", "Customer", "Charge", "Amount", "Status"),
                    rx.table.body(
                        rx.foreach(
                            S.refunds,
                            lambda r: rx.table.row(
                                rx.table.cell(local_time(r["created"])),
                                rx.table.cell(
                                    rx.cond(
                                        r["customer_id"] != "",
                                        rx.link(r["customer"], href="/customers/" + r["customer_id"]),
                                        rx.text(r["customer"]),
                                    )
                                ),
                                rx.table.cell(rx.text(r["charge_id"], size="1", color_scheme="gray")),
                                rx.table.cell(rx.text(r["amount"], weight="medium")),
                                rx.table.cell(
                                    rx.vstack(
                                        rx.text(r["status"], size="2"),
                                        rx.cond(r["reason"] != "", rx.text(r["reason"], size="1", color_scheme="gray")),
                                        spacing="0",
                                    )
                                ),
                                custom_attrs={"data-refund": r["id"]},
                                class_name="refund-row",
                            ),
                        )
                    ),
                    width="100%",
                    size="1",
                ),
                rx.text("No refunds yet.", color_scheme="gray"),
            ),
            width="100%",
        ),
        id="recent-refunds",
    )


@rx.page(route="/dashboard", title="Dashboard · Agent Billy", on_load=[SessionState.require_member, S.load, S.follow])
def dashboard() -> rx.Component:
    return shell(
        sync_card(),
        rx.cond(S.report_error != "", rx.callout(S.report_error, color_scheme="red", icon="triangle-alert")),
        headline(),
        mrr_cards(),
        revenue_card(),
        rx.grid(failed_card(), invoices_card(), columns=rx.breakpoints(initial="1", lg="2"), spacing="4", width="100%"),
        refunds_card(),
        title="Dashboard",
    )
