"""`/settings/sync`: how the store keeps up with Stripe, and webhook set-up (Owner)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import labelled_input
from billy_app.components.layout import local_time, message_callout, shell
from billy_app.components.native_form import posted_form
from billy_app.components.tables import header
from billy_app.state.session import SessionState
from billy_app.state.sync_settings import SyncSettingsState as S

STATUS_COLORS = [("done", "green"), ("running", "blue"), ("skipped", "amber"), ("failed", "red")]


def resource_row(r: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(r["resource"], weight="medium"),
                rx.text(r["kind"], size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        rx.table.cell(
            rx.badge(r["status"], color_scheme=rx.match(r["status"], *STATUS_COLORS, "gray"), variant="soft")
        ),
        rx.table.cell(r["count"], class_name="sync-count"),
        rx.table.cell(rx.cond(r["finished"] != "", local_time(r["finished"]), rx.text("—"))),
        rx.table.cell(rx.text(r["note"], " ", r["throttled"], size="2")),
        class_name="sync-row",
        custom_attrs={"data-resource": r["resource"]},
    )


def webhook_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Webhooks", size="4"),
            rx.cond(
                S.webhooks,
                rx.callout("A signing secret is saved; Stripe's deliveries are verified with it.", icon="check"),
            ),
            rx.text(
                "Restricted keys cannot create webhook endpoints, so add Billy's endpoint yourself: in Stripe, "
                "open Developers → Webhooks → Add endpoint, paste this address, choose “all events”, save, then "
                "copy the endpoint's signing secret here.",
                size="2",
            ),
            rx.code(S.endpoint_url, id="webhook-url"),
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


@rx.page(
    route="/settings/sync",
    title="Stripe sync · Agent Billy",
    on_load=[SessionState.require_member, S.load, S.follow],
)
def sync_settings_page() -> rx.Component:
    return shell(
        rx.cond(
            S.error != "",
            rx.callout(S.error, icon="lock", color_scheme="amber"),
            rx.vstack(
                message_callout(S.message, S.message_kind),
                rx.hstack(
                    rx.vstack(
                        rx.text("Newest Stripe event", size="1", color_scheme="gray"),
                        rx.cond(S.last_event != "", local_time(S.last_event), rx.text("none yet")),
                        spacing="0",
                    ),
                    rx.vstack(
                        rx.text("Last heard from Stripe", size="1", color_scheme="gray"),
                        rx.text(S.lag, " ago", id="sync-lag"),
                        spacing="0",
                    ),
                    rx.spacer(),
                    rx.cond(S.can_manage, rx.button("Sync now", on_click=S.sync_now, id="sync-now")),
                    width="100%",
                    spacing="6",
                    align="center",
                ),
                rx.text(S.how_current, size="2", id="how-current"),
                rx.cond(S.events_note != "", rx.callout(S.events_note, color_scheme="amber", icon="info")),
                rx.table.root(
                    header("Resource", "State", "Objects", "Finished", "Notes"),
                    rx.table.body(rx.foreach(S.rows, resource_row)),
                    width="100%",
                ),
                rx.cond(S.can_manage, webhook_card()),
                spacing="4",
                width="100%",
            ),
        ),
        title="Settings · Stripe sync",
    )
