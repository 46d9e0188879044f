"""`/settings/roles`: the built-in roles, and the custom role builder (Owner, Business plan)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import message_callout, shell
from billy_app.components.tables import header
from billy_app.state.roles import RolesState
from billy_app.state.session import SessionState


def role_row(r: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.hstack(
                rx.text(r["label"], weight="medium"),
                rx.cond(r["built_in"] == "yes", rx.badge("built-in", variant="soft", color_scheme="gray")),
                spacing="2",
                align="center",
            )
        ),
        rx.table.cell(rx.text(r["permissions"], size="2")),
        rx.table.cell(r["cap"]),
        rx.table.cell(r["members"]),
        rx.table.cell(
            rx.cond(
                r["built_in"] == "yes",
                rx.fragment(),
                rx.hstack(
                    rx.button("Change", size="1", variant="soft", on_click=RolesState.open_edit(r["key"])),
                    rx.alert_dialog.root(
                        rx.alert_dialog.trigger(rx.button("Delete", size="1", variant="soft", color_scheme="red")),
                        rx.alert_dialog.content(
                            rx.alert_dialog.title("Delete “", r["label"], "”?"),
                            rx.alert_dialog.description(
                                "Only a role nobody holds can be deleted; move its members first."
                            ),
                            rx.hstack(
                                rx.alert_dialog.cancel(rx.button("Keep", variant="soft", color_scheme="gray")),
                                rx.alert_dialog.action(
                                    rx.button("Delete", color_scheme="red", on_click=RolesState.delete(r["key"]))
                                ),
                                justify="end",
                                spacing="2",
                            ),
                        ),
                    ),
                    spacing="2",
                ),
            )
        ),
        class_name="role-row",
        custom_attrs={"data-role": r["label"]},
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


@rx.page(route="/settings/roles", title="Roles · Agent Billy", on_load=[SessionState.require_member, RolesState.load])
def roles_page() -> rx.Component:
    return shell(
        rx.cond(
            RolesState.refused,
            rx.callout(RolesState.error, icon="lock", color_scheme="amber", id="roles-refused"),
            rx.vstack(
                message_callout(RolesState.message, RolesState.message_kind),
                rx.table.root(
                    header("Role", "Can", "Refund limit", "Members", ""),
                    rx.table.body(rx.foreach(RolesState.rows, role_row)),
                    width="100%",
                ),
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
        ),
        title="Settings · Roles",
    )
