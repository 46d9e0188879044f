"""`/settings/team`: members and pending invites (the Owner's page)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import labelled_input
from billy_app.components.freeze import freeze_button, lift_button
from billy_app.components.invite_rows import invite_rows, role_options
from billy_app.components.layout import local_time, message_callout
from billy_app.components.native_form import native_form
from billy_app.components.page_frame import Audience, billy_page
from billy_app.components.tables import Row, confirm_dialog, rows_table
from billy_app.state.team import MemberRow, TeamState


def member_row(member: rx.Var[MemberRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.vstack(rx.text(member.name, weight="medium"), rx.text(member.email, size="1"), spacing="0")),
        rx.table.cell(
            rx.cond(
                member.is_owner,
                rx.badge("Owner"),
                rx.select.root(
                    rx.select.trigger(aria_label="Role of " + member.email, class_name="member-role"),
                    role_options(),
                    value=member.role,
                    on_change=lambda role: TeamState.change_role(member.id, role),
                ),
            )
        ),
        rx.table.cell(rx.cond(member.last_active != "", local_time(member.last_active), rx.text("never", size="2"))),
        rx.table.cell(
            rx.cond(
                member.is_owner,
                rx.fragment(),
                rx.hstack(
                    rx.cond(
                        member.frozen,
                        lift_button(TeamState.freeze(member.id, False), class_name="unfreeze-member"),
                        freeze_button(TeamState.freeze(member.id, True), class_name="freeze-member"),
                    ),
                    confirm_dialog(
                        "Remove",
                        ("Remove ", member.email, "?"),
                        "They are signed out at once and can no longer open Billy.",
                        "Remove",
                        TeamState.remove(member.id),
                    ),
                    spacing="2",
                ),
            )
        ),
        class_name="member-row",
        custom_attrs={"data-email": member.email},
    )


def invite_row(invite: Row) -> rx.Component:
    return rx.table.row(
        rx.table.cell(invite["email"]),
        rx.table.cell(invite["role_label"]),
        rx.table.cell(local_time(invite["expires"])),
        rx.table.cell(
            rx.hstack(
                rx.button("Resend", size="1", variant="soft", on_click=TeamState.resend(invite["id"])),
                rx.button(
                    "Withdraw", size="1", variant="soft", color_scheme="red", on_click=TeamState.revoke(invite["id"])
                ),
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
                        rx.foreach(TeamState.transferable, lambda member: rx.el.option(member.email, value=member.id)),
                        name="member_id",
                        required=True,
                        aria_label="New Owner",
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


@billy_page("/settings/team", "Settings · Team", on_load=[TeamState.load], audience=Audience.OWNER)
def team_page() -> rx.Component:
    return rx.cond(
        TeamState.refused,
        rx.callout(TeamState.error, icon="lock", color_scheme="amber", id="team-refused"),
        rx.vstack(
            message_callout(TeamState.message, TeamState.message_kind),
            rx.text(TeamState.plan_label, " plan · ", TeamState.seats, size="2", color_scheme="gray", id="team-seats"),
            rows_table(TeamState.members, member_row, ("Member", "Role", "Last active", ""), id="members-table"),
            rx.heading("Pending invites", size="4"),
            rows_table(
                TeamState.invites,
                invite_row,
                ("Email", "Role", "Link expires", ""),
                empty=rx.text("None.", size="2", color_scheme="gray"),
            ),
            rx.heading("Invite members", size="4", id="invite-member"),
            invite_rows(),
            rx.cond(TeamState.transferable.length() > 0, transfer_card()),  # nobody to hand it to: no form
            spacing="4",
            width="100%",
            align="stretch",
        ),
    )
