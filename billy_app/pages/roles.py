"""`/settings/roles`: the built-in roles, and the custom role builder (Owner, Business plan)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import message_callout
from billy_app.components.page_frame import Audience, billy_page
from billy_app.components.tables import confirm_dialog, rows_table
from billy_app.state.roles import RoleRow, RolesState


def role_row(role: rx.Var[RoleRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.hstack(
                rx.text(role.label, weight="medium"),
                rx.cond(role.built_in, rx.badge("built-in", variant="soft", color_scheme="gray")),
                spacing="2",
                align="center",
            )
        ),
        rx.table.cell(rx.text(role.permissions, size="2")),
        rx.table.cell(role.cap),
        rx.table.cell(role.members),
        rx.table.cell(
            rx.cond(
                role.built_in,
                rx.fragment(),
                rx.hstack(
                    rx.button("Change", size="1", variant="soft", on_click=RolesState.open_edit(role.key)),
                    confirm_dialog(
                        "Delete",
                        ("Delete “", role.label, "”?"),
                        "Only a role nobody holds can be deleted; move its members first.",
                        "Delete",
                        RolesState.delete(role.key),
                    ),
                    spacing="2",
                ),
            )
        ),
        class_name="role-row",
        custom_attrs={"data-role": role.label},
    )


def permission_box(choice: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.checkbox(
        choice["words"],
        checked=RolesState.form_permissions.contains(choice["key"]),
        on_change=lambda ticked: RolesState.toggle_permission(choice["key"], ticked),
        custom_attrs={"data-permission": choice["key"]},
    )


def builder() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.cond(RolesState.editing_key == "", "New role", "Change role")),
            rx.vstack(
                rx.text("Name", size="2", weight="medium"),
                rx.input(
                    value=RolesState.form_label,
                    on_change=RolesState.set_form_label,
                    placeholder="Support lead",
                    id="role-name",
                    width="100%",
                ),
                rx.text("This role can", size="2", weight="medium"),
                rx.text("View and search all billing data (every role can).", size="1", color_scheme="gray"),
                rx.foreach(RolesState.choices, permission_box),
                rx.cond(
                    RolesState.refund_ticked,
                    rx.vstack(
                        rx.text("Refund limit per charge (USD)", size="2", weight="medium"),
                        rx.input(
                            value=RolesState.form_cap,
                            on_change=RolesState.set_form_cap,
                            placeholder="250.00",
                            id="role-cap",
                            input_mode="decimal",
                        ),
                        rx.text(
                            "Everything refunded on one charge counts; at most the Billing Manager's $5,000.00.",
                            size="1",
                            color_scheme="gray",
                        ),
                        spacing="1",
                    ),
                ),
                rx.text(
                    "Team, the audit log, settings and Billy's plan stay with the Owner.",
                    size="1",
                    color_scheme="gray",
                ),
                rx.cond(
                    RolesState.form_error != "",
                    rx.callout(RolesState.form_error, color_scheme="red", icon="triangle-alert", id="role-error"),
                ),
                rx.hstack(
                    rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray")),
                    rx.button("Save role", on_click=RolesState.save, id="save-role"),
                    justify="end",
                    spacing="2",
                    width="100%",
                ),
                spacing="2",
                width="100%",
            ),
        ),
        open=RolesState.editor_open,
        on_open_change=RolesState.set_editor_open,
    )


@billy_page("/settings/roles", "Settings · Roles", on_load=[RolesState.load], audience=Audience.OWNER)
def roles_page() -> rx.Component:
    return rx.cond(
        RolesState.refused,
        rx.callout(RolesState.error, icon="lock", color_scheme="amber", id="roles-refused"),
        rx.vstack(
            message_callout(RolesState.message, RolesState.message_kind),
            rows_table(RolesState.rows, role_row, ("Role", "Can", "Refund limit", "Members", "")),
            rx.cond(
                RolesState.custom_allowed,
                rx.button(rx.icon("plus", size=14), "New role", on_click=RolesState.open_new, id="new-role"),
                rx.text(
                    "Custom roles come with the Business plan (Settings → Plan).",
                    size="2",
                    color_scheme="gray",
                    id="custom-roles-need-business",
                ),
            ),
            builder(),
            spacing="4",
            width="100%",
        ),
    )
