"""`/settings/agents`: connect an AI agent, and see or revoke agent tokens (every member)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.freeze import freeze_button, lift_button
from billy_app.components.layout import local_time, message_callout
from billy_app.components.page_frame import billy_page
from billy_app.components.tables import confirm_dialog, rows_table, small_gray
from billy_app.state.agents import AgentsState as S
from billy_app.state.agents import TokenRow

CLAUDE_CONFIG = '{ "mcpServers": { "agent-billy": { "command": "npx", "args": ["agent-billy", "--mcp"] } } }'
STATUS_COLORS = {"Active": "green", "Frozen": "blue", "Revoked": "gray", "Expired": "amber"}


def how_to_connect() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Connect an AI agent", size="3"),
            rx.text(
                "On your computer, run this, approve in the browser window it opens, and the agent acts as you, "
                "within your role's limits:",
                size="2",
            ),
            rx.code("npx agent-billy login --url ", S.instance_url, id="login-command"),
            rx.text("Then add Billy to Claude Desktop's claude_desktop_config.json:", size="2"),
            rx.code(CLAUDE_CONFIG, id="claude-config"),
            spacing="2",
        ),
        width="100%",
    )


def token_row(row: rx.Var[TokenRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.vstack(rx.text(row.client, weight="medium"), small_gray(row.id), spacing="0")),
        rx.table.cell(rx.text(row.member, size="2")),
        rx.table.cell(rx.text(row.scope, size="2")),
        rx.table.cell(local_time(row.created)),
        rx.table.cell(rx.cond(row.expires != "", local_time(row.expires), rx.text("when revoked", size="2"))),
        rx.table.cell(
            rx.cond(
                row.last_used != "",
                rx.vstack(local_time(row.last_used), small_gray(row.last_used_from), spacing="0"),
                rx.text("never", size="2"),
            )
        ),
        rx.table.cell(rx.badge(row.status, color_scheme=rx.match(row.status, *STATUS_COLORS.items(), "gray"))),
        rx.table.cell(
            rx.hstack(
                rx.cond(S.everyone & (row.status == "Active"), freeze_button(S.freeze(row.id, True))),
                rx.cond(S.everyone & (row.status == "Frozen"), lift_button(S.freeze(row.id, False))),
                rx.cond(
                    (row.status == "Active") | (row.status == "Frozen"),
                    confirm_dialog(
                        "Revoke",
                        ("Revoke ", row.client, "?"),
                        "Its next call is refused; the agent has to be connected again.",
                        "Revoke",
                        S.revoke(row.id),
                    ),
                ),
                spacing="2",
            )
        ),
        class_name="token-row",
        custom_attrs={"data-token": row.id},
    )


@billy_page("/settings/agents", "Settings · Agents", on_load=[S.load])
def agents() -> rx.Component:
    return rx.vstack(
        how_to_connect(),
        message_callout(S.message, S.message_kind),
        rows_table(
            S.rows,
            token_row,
            ("Client", "Member", "Scope", "Created", "Expires", "Last used", "Status", ""),
            empty=rx.text("No agent is connected yet.", color_scheme="gray", id="no-tokens"),
            id="tokens-table",
        ),
        spacing="4",
        width="100%",
    )
