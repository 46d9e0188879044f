"""`/settings/spend`: daily refund budgets and the freezes (Owner; issue 15)."""

from __future__ import annotations

import reflex as rx

from billy_app.components.fields import field_label
from billy_app.components.freeze import freeze_button, frozen_badge, lift_button
from billy_app.components.layout import local_time, message_callout
from billy_app.components.list_page import labelled
from billy_app.components.page_frame import Audience, billy_page
from billy_app.components.tables import confirm_dialog, rows_table
from billy_app.state.spend_controls import AlertLine, BudgetLine, MemberLine, RuleLine, SpendControlsState
from services import timezones


def freeze_all_panel() -> rx.Component:
    return rx.cond(
        SpendControlsState.writes_frozen,
        rx.callout(
            rx.hstack(
                rx.text("All billing changes are frozen. Everyone can still look; nothing changes in Stripe."),
                rx.button(
                    "Lift the freeze", size="1", on_click=SpendControlsState.freeze_all(False), id="unfreeze-all"
                ),
                align="center",
                spacing="3",
                wrap="wrap",
            ),
            icon="snowflake",
            color_scheme="blue",
            id="writes-frozen",
        ),
        rx.hstack(
            confirm_dialog(
                "Freeze all billing changes",
                ("Freeze all billing changes?",),
                "For an incident: refunds, customer, subscription, invoice and product changes are refused for "
                "everyone, you included, through the dashboard, the API and agents, until you lift it.",
                "Freeze",
                SpendControlsState.freeze_all(True),
            ),
            rx.text("Stops every change to Stripe at once; reading goes on.", size="2", color_scheme="gray"),
            align="center",
            spacing="3",
        ),
    )


def alert_row(alert: rx.Var[AlertLine]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(local_time(alert.at)),
        rx.table.cell(
            rx.vstack(
                rx.text(alert.summary, size="2"),
                rx.link("Audit rows " + alert.audit_ids, href=alert.audit_link, size="1", class_name="alert-audit"),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.cond(
                (alert.member_id > 0) & ~alert.member_frozen,
                freeze_button(SpendControlsState.freeze_member(alert.member_id, True), class_name="alert-freeze"),
                rx.cond(alert.member_frozen, frozen_badge()),
            )
        ),
        class_name=rx.cond(alert.id == SpendControlsState.focus_alert, "alert-row alert-focus", "alert-row"),
        background=rx.cond(alert.id == SpendControlsState.focus_alert, "var(--amber-a3)", "transparent"),
        custom_attrs={"data-alert": alert.id},
    )


def rule_row(rule: rx.Var[RuleLine]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(rule.words, size="2")),
        rx.table.cell(
            rx.form(
                rx.hstack(
                    rx.el.input(type="hidden", name="kind", value=rule.kind),
                    rx.input(
                        name="threshold",
                        default_value=rule.threshold,
                        width="8em",
                        aria_label="Threshold",
                        key=rule.kind + rule.threshold,
                    ),
                    rx.checkbox("On", name="enabled", default_checked=rule.enabled, key=rule.kind + "-on"),
                    rx.button("Save", size="1", variant="soft", type="submit"),
                    rx.cond(rule.is_default, rx.badge("default", variant="soft", color_scheme="gray")),
                    align="center",
                    spacing="2",
                ),
                on_submit=SpendControlsState.save_rule,
            )
        ),
        class_name="rule-row",
        custom_attrs={"data-rule": rule.kind},
    )


def working_hours_form() -> rx.Component:
    """The organisation's zone: "outside working hours" means outside 09:00–18:00 on weekdays there."""
    return rx.form(
        rx.hstack(
            field_label("Working hours are 09:00–18:00 on weekdays in", "org-zone"),
            rx.el.select(
                *(rx.el.option(zone, value=zone) for zone in timezones.zone_choices()),
                name="zone",
                id="org-zone",
                default_value=SpendControlsState.org_zone,
                key=SpendControlsState.org_zone,
            ),
            rx.button("Save", size="1", variant="soft", type="submit", id="save-zone"),
            align="center",
            spacing="2",
            wrap="wrap",
        ),
        on_submit=SpendControlsState.save_zone,
    )


def budget_row(line: rx.Var[BudgetLine]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(line.label, weight="medium")),
        rx.table.cell(line.currency.upper()),
        rx.table.cell(line.amount),
        rx.table.cell(
            rx.cond(
                line.is_default,
                rx.badge("default", variant="soft", color_scheme="gray"),
                rx.button(
                    "Use the default",
                    size="1",
                    variant="soft",
                    color_scheme="gray",
                    on_click=SpendControlsState.reset_budget(line.scope, line.currency),
                ),
            )
        ),
        class_name="budget-row",
        custom_attrs={"data-scope": line.scope, "data-currency": line.currency},
    )


def budget_form() -> rx.Component:
    return rx.hstack(
        labelled(
            "For",
            rx.select.root(
                rx.select.trigger(id="budget-scope", aria_label="Role or member", min_width="14em"),
                rx.select.content(
                    rx.foreach(
                        SpendControlsState.scope_choices,
                        lambda choice: rx.select.item(choice[1], value=choice[0]),
                    )
                ),
                value=SpendControlsState.form_scope,
                on_change=SpendControlsState.set_form_scope,
            ),
        ),
        labelled(
            "Currency",
            rx.input(
                value=SpendControlsState.form_currency,
                on_change=SpendControlsState.set_form_currency,
                width="5em",
                id="budget-currency",
            ),
            "budget-currency",
        ),
        labelled(
            "Per 24 hours",
            rx.input(
                value=SpendControlsState.form_amount,
                on_change=SpendControlsState.set_form_amount,
                placeholder="500.00 (empty: no budget)",
                width="13em",
                input_mode="decimal",
                id="budget-amount",
            ),
            "budget-amount",
        ),
        rx.button("Save budget", on_click=SpendControlsState.save_budget, id="save-budget"),
        align="end",
        spacing="3",
        wrap="wrap",
    )


def member_row(member: rx.Var[MemberLine]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(member.email, weight="medium")),
        rx.table.cell(member.role),
        rx.table.cell(member.spent),
        rx.table.cell(
            rx.cond(
                member.is_owner,
                rx.fragment(),
                rx.cond(
                    member.frozen,
                    rx.hstack(
                        frozen_badge(),
                        lift_button(SpendControlsState.freeze_member(member.id, False), class_name="unfreeze-member"),
                        spacing="2",
                        align="center",
                    ),
                    freeze_button(SpendControlsState.freeze_member(member.id, True), class_name="freeze-member"),
                ),
            )
        ),
        class_name="spend-member-row",
        custom_attrs={"data-email": member.email},
    )


@billy_page(
    "/settings/spend",
    "Settings · Spend controls",
    on_load=[SpendControlsState.load, SpendControlsState.follow],
    audience=Audience.OWNER,
)
def spend_controls_page() -> rx.Component:
    return rx.cond(
        SpendControlsState.refused,
        rx.callout(SpendControlsState.error, icon="lock", color_scheme="amber", id="spend-refused"),
        rx.vstack(
            message_callout(SpendControlsState.message, SpendControlsState.message_kind),
            freeze_all_panel(),
            rx.heading("Alerts", size="4", as_="h2"),
            rows_table(
                SpendControlsState.alerts,
                alert_row,
                ("When", "What happened", ""),
                empty=rx.text("No alerts yet.", size="2", color_scheme="gray", id="no-alerts"),
                id="alerts-table",
            ),
            rx.heading("Daily refund budgets", size="4", as_="h2"),
            rx.text(
                "What each person may refund in any 24 hours, on top of the per-charge limit. Over it, a refund "
                "becomes a request for approval. Agents count against their member's budget.",
                size="2",
                color_scheme="gray",
            ),
            rows_table(SpendControlsState.budgets, budget_row, ("Who", "Currency", "Budget", ""), id="budgets-table"),
            budget_form(),
            rx.heading("Alert rules", size="4", as_="h2"),
            rows_table(SpendControlsState.rules, rule_row, ("Rule", "Threshold"), id="rules-table"),
            working_hours_form(),
            rx.heading("Members", size="4", as_="h2"),
            rows_table(
                SpendControlsState.members,
                member_row,
                ("Member", "Role", "Refunded, last 24 hours", ""),
                id="spend-members-table",
            ),
            spacing="4",
            width="100%",
            align="stretch",
        ),
    )
