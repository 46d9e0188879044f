"""`/settings/team`: members and pending invites (the Owner's page)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import labelled_input
from billy_app.components.invite_rows import invite_rows, role_options
from billy_app.components.layout import local_time, message_callout, shell
from billy_app.components.native_form import native_form
from billy_app.components.tables import header
from billy_app.state.session import SessionState
from billy_app.state.team import TeamState


def member_row(m: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.vstack(rx.text(m["name"], weight="medium"), rx.text(m["email"], size="1"), spacing="0")),
        rx.table.cell(
            rx.cond(
                m["is_owner"] == "yes",
                rx.badge("Owner"),
                rx.select.root(
                    rx.select.trigger(),
                    role_options(),
                    value=m["role"],
                    on_change=lambda role: TeamState.change_role(m["id"], role),
                ),
            )
        ),
        rx.table.cell(rx.cond(m["last_active"] != "", local_time(m["last_active"]), rx.text("never", size="2"))),
        rx.table.cell(
            rx.cond(
                m["is_owner"] == "yes",
                rx.fragment(),
                rx.alert_dialog.root(
                    rx.alert_dialog.trigger(rx.button("Remove", size="1", variant="soft", color_scheme="red")),
                    rx.alert_dialog.content(
                        rx.alert_dialog.title("Remove ", m["email"], "?"),
                        rx.alert_dialog.description("They are signed out at once and can no longer open Billy."),
                        rx.hstack(
                            rx.alert_dialog.cancel(rx.button("Keep", variant="soft", color_scheme="gray")),
                            rx.alert_dialog.action(
                                rx.button("Remove", color_scheme="red", on_click=TeamState.remove(m["id"]))
                            ),
                            justify="end",
                            spacing="2",
                        ),
                    ),
                ),
            )
        ),
        class_name="member-row",
        custom_attrs={"data-email": m["email"]},
    )


def invite_row(i: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(i["email"]),
        rx.table.cell(i["role_label"]),
        rx.table.cell(local_time(i["expires"])),
        rx.table.cell(
            rx.hstack(
                rx.button("Resend", size="1", variant="soft", on_click=TeamState.resend(i["id"])),
                rx.button("Withdraw", size="1", variant="soft", color_scheme="red", on_click=TeamState.revoke(i["id"])),
            )
        ),
        class_name="invite-row",
    )


def transfer_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Transfer ownership", size="3"),
            rx.text(
                "The new Owner gets every power; you become a Billing Manager. Enter your password to confirm.",
                size="2",
            ),
            native_form(
                rx.hstack(
                    rx.el.select(
                        rx.foreach(TeamState.transferable, lambda m: rx.el.option(m["email"], value=m["id"])),
                        name="member_id",
                        required=True,
                    ),
                    labelled_input(
                        "Your password",
                        "password",
                        input_type="password",
                        id="transfer-password",
                        auto_complete="current-password",
                    ),
                    rx.button("Transfer", type="submit", color_scheme="red", variant="soft"),
                    align="end",
                    spacing="3",
                    width="100%",
                ),
                action="/api/team/transfer-ownership",
                method="post",
                width="100%",
            ),
            spacing="2",
        )
    )


@rx.page(route="/settings/team", title="Team · Agent Billy", on_load=[SessionState.require_member, TeamState.load])
def team_page() -> rx.Component:
    return shell(
        rx.cond(
            TeamState.refused,
            rx.callout(TeamState.error, icon="lock", color_scheme="amber", id="team-refused"),
            rx.vstack(
                message_callout(TeamState.message, TeamState.message_kind),
                rx.text(
                    TeamState.plan_label, " plan · ", TeamState.seats, size="2", color_scheme="gray", id="team-seats"
                ),
                rx.table.root(
                    header("Member", "Role", "Last active", ""),
                    rx.table.body(rx.foreach(TeamState.members, member_row)),
                    width="100%",
                    id="members-table",
                ),
                rx.heading("Pending invites", size="4"),
                rx.cond(
                    TeamState.invites.length() == 0,
                    rx.text("None.", size="2", color_scheme="gray"),
                    rx.table.root(
                        header("Email", "Role", "Link expires", ""),
                        rx.table.body(rx.foreach(TeamState.invites, invite_row)),
                        width="100%",
                    ),
                ),
                rx.heading("Invite members", size="4", id="invite-member"),
                invite_rows(),
                rx.cond(TeamState.transferable.length() > 0, transfer_card()),  # nobody to hand it to: no form
                spacing="4",
                width="100%",
                align="stretch",
            ),
        ),
        title="Settings · Team",
    )
