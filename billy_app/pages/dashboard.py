"""`/dashboard`: the first sync's progress, then headline numbers and recent charges."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import shell
from billy_app.components.tables import charge_cells, header
from billy_app.state.dashboard import DashboardState
from billy_app.state.session import SessionState


def stat(label: str, value: rx.Var, stat_id: str) -> rx.Component:
    return rx.card(
        rx.vstack(rx.text(label, size="2", color_scheme="gray"), rx.heading(value, size="7", id=stat_id)),
        min_width="10em",
    )


def sync_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.cond(DashboardState.running, rx.spinner(size="2"), rx.icon("refresh-cw", size=16)),
                rx.heading(rx.cond(DashboardState.running, "Syncing from Stripe…", "Stripe sync"), size="3"),
                rx.spacer(),
                rx.text(DashboardState.total_synced, " objects", size="2", color_scheme="gray"),
                rx.button(
                    "Sync now",
                    size="1",
                    variant="soft",
                    on_click=DashboardState.sync_now,
                    disabled=DashboardState.running,
                ),
                align="center",
                width="100%",
            ),
            rx.hstack(
                rx.foreach(
                    DashboardState.resources,
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


@rx.page(
    route="/dashboard", title="Dashboard · Agent Billy", on_load=[SessionState.require_member, DashboardState.load]
)
def dashboard() -> rx.Component:
    return shell(
        sync_card(),
        rx.hstack(
            stat("Customers", DashboardState.customers, "stat-customers"),
            stat("Charges", DashboardState.charges, "stat-charges"),
            stat("Failed payments", DashboardState.failed_charges, "stat-failed"),
            stat("Refunded", DashboardState.refunded_total, "stat-refunded"),
            spacing="4",
            wrap="wrap",
        ),
        rx.heading("Recent charges", size="4"),
        rx.table.root(
            header("Date", "Description", "Card", "Amount", "Status"),
            rx.table.body(rx.foreach(DashboardState.recent, lambda c: rx.table.row(*charge_cells(c)))),
            width="100%",
        ),
        title="Dashboard",
    )
