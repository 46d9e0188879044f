"""`/settings/sync`: how the store keeps up with Stripe, and webhook set-up (Owner)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import labelled_input
from billy_app.components.layout import local_time, message_callout
from billy_app.components.native_form import posted_form
from billy_app.components.page_frame import billy_page
from billy_app.components.tables import Row, colored_badge, rows_table, small_gray
from billy_app.state.sync_settings import SyncSettingsState

STATUS_COLORS = {"done": "green", "running": "blue", "skipped": "amber", "failed": "red"}


def resource_row(resource: Row) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(rx.text(resource["resource"], weight="medium"), small_gray(resource["kind"]), spacing="0")
        ),
        rx.table.cell(colored_badge(resource["status"], resource["status"], STATUS_COLORS, "gray")),
        rx.table.cell(resource["count"], class_name="sync-count", id=resource["dom_id"]),
        rx.table.cell(rx.cond(resource["finished"] != "", local_time(resource["finished"]), rx.text("—"))),
        rx.table.cell(rx.text(resource["note"], " ", resource["throttled"], size="2")),
        class_name="sync-row",
        custom_attrs={"data-resource": resource["resource"]},
    )


def fact(label: str, value: rx.Component) -> rx.Component:
    return rx.vstack(small_gray(label), value, spacing="0")


def webhook_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Webhooks", size="4"),
            rx.cond(
                SyncSettingsState.webhooks,
                rx.callout("A signing secret is saved; Stripe's deliveries are verified with it.", icon="check"),
            ),
            rx.text(
                "Restricted keys cannot create webhook endpoints, so add Billy's endpoint yourself: in Stripe, "
                "open Developers → Webhooks → Add endpoint, paste this address, choose “all events”, save, then "
                "copy the endpoint's signing secret here.",
                size="2",
            ),
            rx.code(SyncSettingsState.endpoint_url, id="webhook-url"),
            posted_form(
                labelled_input(
                    "Signing secret (whsec_…)", "secret", input_type="password", auto_complete="off", id="whsec"
                ),
                action="/api/settings/webhook-secret",
                submit="Save signing secret",
                submit_id="save-webhook-secret",
            ),
            spacing="3",
        ),
        width="100%",
    )


@billy_page("/settings/sync", "Settings · Stripe sync", on_load=[SyncSettingsState.load, SyncSettingsState.follow])
def sync_settings_page() -> rx.Component:
    return rx.cond(
        SyncSettingsState.error != "",
        rx.callout(SyncSettingsState.error, icon="lock", color_scheme="amber"),
        rx.vstack(
            message_callout(SyncSettingsState.message, SyncSettingsState.message_kind),
            rx.hstack(
                fact(
                    "Newest Stripe event",
                    rx.cond(
                        SyncSettingsState.last_event != "",
                        local_time(SyncSettingsState.last_event),
                        rx.text("none yet"),
                    ),
                ),
                fact("Last heard from Stripe", rx.text(SyncSettingsState.lag, " ago", id="sync-lag")),
                rx.spacer(),
                rx.cond(
                    SyncSettingsState.can_manage,
                    rx.button("Sync now", on_click=SyncSettingsState.sync_now, id="sync-now"),
                ),
                width="100%",
                spacing="6",
                align="center",
            ),
            rx.text(SyncSettingsState.how_current, size="2", id="how-current"),
            rx.cond(
                SyncSettingsState.events_note != "",
                rx.callout(SyncSettingsState.events_note, color_scheme="amber", icon="info"),
            ),
            rows_table(SyncSettingsState.rows, resource_row, ("Resource", "State", "Objects", "Finished", "Notes")),
            rx.cond(SyncSettingsState.can_manage, webhook_card()),
            spacing="4",
            width="100%",
        ),
    )
