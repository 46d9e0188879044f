"""/connect-agent: approve `agent-billy login` with a scope at most the member's role."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import field_label
from billy_app.components.layout import message_callout
from billy_app.components.native_form import hidden, native_form
from billy_app.components.page_frame import billy_page
from billy_app.state.connect_agent import ConnectAgentState as S

EXPIRY_CHOICES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("never", "Until revoked")]


def _choice(name: str, value: str, label: str, note: str, *, checked: bool = False) -> rx.Component:
    return rx.el.label(
        rx.hstack(
            rx.el.input(type="radio", name=name, value=value, default_checked=checked, id=f"{name}-{value}"),
            rx.vstack(
                rx.text(label, size="2", weight="medium"), rx.text(note, size="1", color_scheme="gray"), spacing="0"
            ),
            align="start",
        ),
    )


def _group(group: rx.Var[list[str]]) -> rx.Component:
    return rx.el.label(
        rx.hstack(
            rx.el.input(type="checkbox", name="group", value=group[0], id="group-" + group[0]),
            rx.text(group[1], size="2"),
            align="center",
        )
    )


def approval_form() -> rx.Component:
    return native_form(
        rx.vstack(
            *(
                hidden(name, value)
                for name, value in (
                    ("client_name", S.client_name),
                    ("redirect_uri", S.redirect_uri),
                    ("state", S.request_state),
                    ("code_challenge", S.code_challenge),
                    ("code_challenge_method", S.code_challenge_method),
                    ("client_id", S.client_id),
                    ("resource", S.resource),
                )
            ),
            rx.text("What may it do?", size="2", weight="bold"),
            _choice(
                "access", "role", "What my role allows", "Refunds, edits and emails within your limits.", checked=True
            ),
            _choice(
                "access", "read_only", "Read only", "Look up customers, charges, invoices and reports; change nothing."
            ),
            rx.cond(
                S.groups.length() > 0,
                rx.vstack(
                    _choice("access", "some", "Only some kinds of change", "Looking things up, and what you tick:"),
                    rx.vstack(rx.foreach(S.groups, _group), spacing="1", padding_left="2em"),
                    spacing="1",
                ),
            ),
            rx.vstack(
                field_label("Refund cap per charge for this agent, in USD (optional)", "refund-cap"),
                rx.input(
                    name="refund_cap", placeholder="e.g. 50.00", input_mode="decimal", width="12em", id="refund-cap"
                ),
                rx.text(S.cap_hint, size="1", color_scheme="gray"),
                spacing="1",
            ),
            rx.vstack(
                field_label("Daily refund budget for this agent, in USD (optional)", "daily-budget"),
                rx.input(
                    name="daily_budget",
                    placeholder="e.g. 200.00",
                    input_mode="decimal",
                    width="12em",
                    id="daily-budget",
                ),
                rx.text(S.budget_hint, size="1", color_scheme="gray"),
                spacing="1",
            ),
            rx.vstack(
                field_label("Expires after", "expires-in"),
                rx.el.select(
                    *(rx.el.option(label, value=value) for value, label in EXPIRY_CHOICES),
                    name="expires_in_days",
                    default_value="90",
                    id="expires-in",
                ),
                spacing="1",
            ),
            rx.hstack(
                rx.button(
                    "Deny",
                    type="submit",
                    name="decision",
                    value="deny",
                    variant="soft",
                    color_scheme="gray",
                    id="deny-agent",
                ),
                rx.button("Approve", type="submit", name="decision", value="approve", id="approve-agent"),
                justify="end",
                width="100%",
            ),
            spacing="3",
            width="100%",
        ),
        action="/api/agent/connect",
        method="post",
        width="100%",
    )


@billy_page("/connect-agent", "Connect an agent", on_load=[S.load])
def connect_agent() -> rx.Component:
    return rx.card(
        rx.cond(
            S.problem != "",
            rx.callout(S.problem, color_scheme="red", icon="triangle-alert", id="connect-problem"),
            rx.vstack(
                rx.heading("Connect “", S.client_name, "” to Billy", size="5", id="connect-heading"),
                rx.text(
                    "It will act as you, ",
                    rx.text.strong(S.who),
                    ", through the same permission engine as this dashboard: it can never do more than your "
                    "role allows, every action it takes is in the audit log as “agent”, and you can revoke it "
                    "at any time in Settings → Agents.",
                    size="2",
                ),
                rx.text(
                    "The approval goes back to ",
                    rx.code(S.listener),
                    rx.cond(S.client_id == "", " on this computer.", "."),
                    size="1",
                    color_scheme="gray",
                ),
                message_callout(S.message, "error"),
                approval_form(),
                spacing="3",
                width="100%",
            ),
        ),
        max_width="36em",
    )
