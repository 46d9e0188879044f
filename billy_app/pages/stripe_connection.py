"""`/settings/stripe`: the connected Stripe key, its permissions, rotation and disconnection (Owner)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import labelled_input
from billy_app.components.layout import local_time, message_callout
from billy_app.components.native_form import posted_form
from billy_app.components.page_frame import Audience, billy_page
from billy_app.components.permission_checklist import permissions_table
from billy_app.components.tables import confirm_dialog, small_gray
from billy_app.state.stripe_connection import StripeConnectionState as S
from services.stripe_keys import HOW_TO_CREATE

KEY_ROUTE = "/api/settings/stripe-key"


def fact(label: str, *value: rx.Component, fact_id: str) -> rx.Component:
    return rx.vstack(small_gray(label), rx.box(*value, id=fact_id), spacing="0")


def when_and_who(at: rx.Var[str], by: rx.Var[str]) -> rx.Component:
    """ "<time in the viewer's zone> by <email>", or a dash when it never happened."""
    return rx.cond(
        at != "",
        rx.hstack(
            local_time(at),
            rx.cond(by != "", rx.text("by ", by, size="2")),
            spacing="1",
            align="baseline",
            wrap="wrap",
        ),
        rx.text("—", size="2"),
    )


def key_card() -> rx.Component:
    """Which key Billy uses: mode, last four characters, when and by whom it was connected."""
    return rx.card(
        rx.vstack(
            rx.heading("Connected key", size="4", as_="h2"),
            rx.hstack(
                fact(
                    "Mode",
                    rx.badge(S.mode, color_scheme=rx.cond(S.mode == "live", "green", "amber"), variant="soft"),
                    fact_id="stripe-mode",
                ),
                fact("Key ending", rx.code("…" + S.key_hint), fact_id="stripe-key-hint"),
                fact("Connected", when_and_who(S.connected_at, S.connected_by), fact_id="stripe-connected-at"),
                fact("Last rotated", when_and_who(S.rotated_at, S.rotated_by), fact_id="stripe-rotated-at"),
                spacing="6",
                wrap="wrap",
                width="100%",
            ),
            rx.text(
                "The key itself is kept encrypted in Billy's secret store: nobody, you included, can see it here.",
                size="2",
                color_scheme="gray",
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def permissions_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Permissions", size="4", as_="h2"),
                rx.spacer(),
                rx.button(
                    rx.cond(S.checking, "Checking…", "Check again"),
                    on_click=S.recheck,
                    loading=S.checking,
                    variant="soft",
                    id="recheck-permissions",
                ),
                width="100%",
                align="center",
            ),
            rx.text(
                "Last checked ",
                rx.cond(S.checked_at != "", local_time(S.checked_at), rx.text.span("when it was connected")),
                ". Checking asks Stripe what the key may do, without changing anything there.",
                size="2",
            ),
            permissions_table(S.checklist),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def key_form(submit: str) -> rx.Component:
    """A native form posted to the server: the key never passes through this page's state."""
    return posted_form(
        labelled_input(
            "New restricted key",
            "key",
            input_type="password",
            id="new-stripe-key",
            placeholder="rk_live_… or rk_test_…",
            auto_complete="off",
            spell_check=False,
        ),
        action=KEY_ROUTE,
        submit=submit,
        submit_id="save-stripe-key",
    )


def rotate_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading(rx.cond(S.connected, "Rotate the key", "Connect a key"), size="4", as_="h2"),
            rx.text(
                rx.cond(
                    S.connected,
                    "Paste a new restricted key of the same Stripe account and mode. Billy checks it first (a "
                    "restricted key, the six permissions, the same account): only then does it replace the current "
                    "key, which keeps working until that moment. Afterwards, delete the old key in Stripe.",
                    "Paste a restricted key of the same Stripe account and mode as the data Billy keeps. Billy checks "
                    "it, then syncing starts again from where it stopped.",
                ),
                size="2",
            ),
            rx.text(HOW_TO_CREATE, size="2", color_scheme="gray"),
            rx.cond(
                S.pasted_checklist.length() > 0,
                rx.vstack(
                    rx.text("The key you pasted:", size="2", weight="medium"),
                    permissions_table(S.pasted_checklist, "pasted-key-checklist"),
                    spacing="1",
                    width="100%",
                ),
            ),
            rx.cond(S.connected, key_form("Check and rotate"), key_form("Check and connect")),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def disconnect_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Disconnect", size="4", as_="h2"),
            rx.text(
                "Deletes the key from Billy's secret store and stops syncing. Everything already synced stays "
                "readable; refunds and other changes stop until a key is connected again.",
                size="2",
            ),
            confirm_dialog(
                "Disconnect Stripe",
                ("Disconnect the key ending ", S.key_hint, "?"),
                "Billy deletes it from its secret store and stops syncing. Your team keeps reading what is already "
                "synced, but nothing changes in Stripe through Billy until you connect a key again.",
                "Disconnect",
                S.disconnect,
                ids=("disconnect-stripe", "confirm-disconnect"),
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def status_callouts() -> rx.Component:
    return rx.fragment(
        rx.cond(
            S.rejected,
            rx.callout(
                "Stripe rejected this key: it was revoked, rolled or has expired. Paste a new restricted key below "
                "to rotate it; until then Billy cannot reach Stripe.",
                icon="triangle-alert",
                color_scheme="red",
                id="stripe-key-rejected",
            ),
        ),
        rx.cond(
            ~S.connected & S.ever_connected,
            rx.callout(
                rx.text(
                    "Stripe is disconnected",
                    rx.cond(S.disconnected_at != "", rx.text.span(" since ", local_time(S.disconnected_at))),
                    rx.cond(S.disconnected_by != "", rx.text.span(" by ", S.disconnected_by)),
                    ". Billy keeps everything it synced, and nothing new arrives until you connect a key again.",
                ),
                icon="unplug",
                color_scheme="amber",
                id="stripe-disconnected",
            ),
        ),
        rx.cond(
            ~S.ever_connected,
            rx.callout(
                "Stripe has not been connected yet: paste a restricted key below, or use the set-up wizard.",
                icon="info",
                id="stripe-never-connected",
            ),
        ),
    )


@billy_page("/settings/stripe", "Settings · Stripe connection", on_load=[S.load], audience=Audience.OWNER)
def stripe_connection_page() -> rx.Component:
    return rx.cond(
        S.refused,
        rx.callout(S.error, icon="lock", color_scheme="amber", id="stripe-refused"),
        rx.vstack(
            message_callout(S.message, S.message_kind),
            status_callouts(),
            rx.cond(S.connected, rx.fragment(key_card(), permissions_card())),
            rotate_card(),
            rx.cond(S.connected, disconnect_card()),
            spacing="4",
            width="100%",
        ),
    )
