"""`/settings/audit` ("Audit log"): every action attempt, filtered, opened, exported and verified.

The Owner's page (`Audience.OWNER`): anyone else sees the frame's notice and no rows; their
events are refused by the service all the same (and logged), whatever this page would show."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import message_callout, status_callout
from billy_app.components.list_page import filter_bar, labelled
from billy_app.components.page_frame import Audience, billy_page
from billy_app.components.tables import colored_badge, rows_table, small_gray
from billy_app.state.audit_viewer import (
    OUTCOME_CHOICES,
    SOURCE_CHOICES,
    AuditTableRow,
    AuditViewerState,
    VerifyOutcome,
)

OUTCOME_COLORS = {"ok": "green", "denied": "amber", "failed": "red"}


def when(iso_value: rx.Var[str]) -> rx.Component:
    """A UTC time in the viewer's zone, to the second."""
    return rx.moment(iso_value, format="YYYY-MM-DD HH:mm:ss", local=True)


def outcome_badge(outcome: rx.Var[str], label: rx.Var[str]) -> rx.Component:
    return colored_badge(label, outcome, OUTCOME_COLORS, "gray", class_name="outcome-badge")


def choice(
    label: str, name: str, choices: list[tuple[str, str]], value: rx.Var[str], on_change: object
) -> rx.Component:
    return labelled(
        label,
        rx.select.root(
            rx.select.trigger(id=f"audit-{name}", aria_label=label, min_width="9em"),
            rx.select.content(*[rx.select.item(text, value=key) for key, text in choices]),
            value=value,
            on_change=on_change,
            name=name,
        ),
    )


def audit_filters() -> rx.Component:
    return filter_bar(
        AuditViewerState,
        labelled(
            "Person",
            rx.input(
                name="person",
                id="audit-person",
                placeholder="alice@example.com or alice",
                value=AuditViewerState.filter_person,
                on_change=AuditViewerState.set_person,
                width="16em",
            ),
        ),
        labelled(
            "Action",
            rx.input(
                name="action",
                id="audit-action",
                placeholder="team.invite, team or team.inv*",
                value=AuditViewerState.filter_action,
                on_change=AuditViewerState.set_action,
                custom_attrs={"list": "audit-known-actions"},
                width="14em",
            ),
        ),
        rx.el.datalist(
            rx.foreach(AuditViewerState.actions, lambda action: rx.el.option(value=action)), id="audit-known-actions"
        ),
        choice("Source", "source", SOURCE_CHOICES, AuditViewerState.filter_source, AuditViewerState.set_source),
        choice("Outcome", "outcome", OUTCOME_CHOICES, AuditViewerState.filter_outcome, AuditViewerState.set_outcome),
        labelled(
            "From",
            rx.input(
                type="date",
                name="from",
                id="audit-from",
                value=AuditViewerState.filter_from,
                on_change=AuditViewerState.set_from,
            ),
            field_id="audit-from",
        ),
        labelled(
            "To",
            rx.input(
                type="date",
                name="to",
                id="audit-to",
                value=AuditViewerState.filter_to,
                on_change=AuditViewerState.set_to,
            ),
            field_id="audit-to",
        ),
        note=rx.text(
            "Dates are whole days in your time zone (",
            AuditViewerState.zone,
            "); times below are shown in it too.",
            size="1",
            color_scheme="gray",
        ),
    )


def audit_row(entry: rx.Var[AuditTableRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(when(entry.at), size="2"),
                rx.button("#", entry.id, size="1", variant="ghost", type="button", class_name="open-detail"),
                spacing="1",
            )
        ),
        rx.table.cell(rx.vstack(rx.text(entry.who, size="2"), small_gray(entry.role), spacing="0")),
        rx.table.cell(
            rx.vstack(
                rx.code(entry.action, variant="ghost"),
                rx.cond(entry.error != "", rx.text(entry.error, size="1", color_scheme="red", max_width="24em")),
                spacing="1",
            )
        ),
        rx.table.cell(rx.text(entry.targets, size="1", max_width="14em", class_name="audit-targets")),
        rx.table.cell(entry.amount),
        rx.table.cell(entry.source),
        rx.table.cell(outcome_badge(entry.outcome, entry.outcome_label)),
        on_click=AuditViewerState.open_detail(entry.id),
        cursor="pointer",
        class_name="audit-row",
        custom_attrs={"data-id": entry.id, "data-action": entry.action},
    )


def detail_item(label: str, value: rx.Component | rx.Var[str], key: str) -> rx.Component:
    return rx.data_list.item(
        rx.data_list.label(label, min_width="9em"),
        rx.data_list.value(value, custom_attrs={"data-field": key}),
    )


def mono(value: rx.Var[str]) -> rx.Component:
    return rx.code(value, variant="ghost", size="1", word_break="break-all")


def detail_dialog() -> rx.Component:
    detail = AuditViewerState.detail
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Audit row #", detail.id),
            rx.dialog.description(detail.action, " · ", detail.outcome_label, size="2", color_scheme="gray"),
            rx.data_list.root(
                detail_item("Time (yours)", when(detail.at), "at"),
                detail_item("Time (UTC)", detail.at_utc, "at_utc"),
                detail_item(
                    "Who",
                    rx.hstack(
                        rx.text(detail.who),
                        rx.badge(detail.role, variant="soft"),
                        rx.text("id ", detail.actor_id, size="1", color_scheme="gray"),
                    ),
                    "who",
                ),
                detail_item("Source", detail.source, "source"),
                detail_item("Client address", detail.client_address, "client_address"),
                detail_item("User agent", rx.text(detail.user_agent, size="1"), "user_agent"),
                detail_item("Action", mono(detail.action), "action"),
                detail_item("Targets", detail.targets, "targets"),
                detail_item("Amount", detail.amount, "amount"),
                detail_item("Outcome", outcome_badge(detail.outcome, detail.outcome_label), "outcome"),
                rx.cond(detail.error != "", detail_item("Error", rx.text(detail.error, color_scheme="red"), "error")),
                rx.cond(
                    detail.details != "",
                    detail_item(
                        "Details",
                        rx.el.pre(
                            detail.details, style={"white_space": "pre-wrap", "margin": "0", "font_size": "12px"}
                        ),
                        "details",
                    ),
                ),
                detail_item("Previous hash", mono(detail.prev_hash), "prev_hash"),
                detail_item("Hash", mono(detail.hash), "hash"),
                detail_item(
                    "Seal",
                    rx.cond(
                        detail.sealed,
                        rx.text("This row's hash matches its content.", color_scheme="green", size="2"),
                        rx.text(
                            "This row's hash does NOT match its content: it was changed outside Billy. "
                            "Run Verify integrity.",
                            color_scheme="red",
                            size="2",
                        ),
                    ),
                    "sealed",
                ),
                size="2",
                margin_top="1em",
                id="audit-detail",
            ),
            rx.hstack(
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray", id="close-detail")),
                justify="end",
                margin_top="1em",
            ),
            max_width="44em",
        ),
        open=AuditViewerState.detail_open,
        on_open_change=AuditViewerState.set_detail_open,
    )


def verify_result() -> rx.Component:
    return rx.cond(
        AuditViewerState.verify_kind != VerifyOutcome.NOT_RUN,
        status_callout(
            AuditViewerState.verify_message,
            AuditViewerState.verify_kind == VerifyOutcome.OK,
            "shield-check",
            "shield-alert",
            id="verify-result",
            custom_attrs={"data-kind": AuditViewerState.verify_kind},
            width="100%",
        ),
    )


def toolbar() -> rx.Component:
    return rx.hstack(
        rx.text(
            "Every action attempt, from the dashboard, the API or the agent: who, what, when, from where and how it "
            "ended. Rows cannot be changed or deleted.",
            size="2",
            color_scheme="gray",
        ),
        rx.spacer(),
        rx.button(
            rx.cond(AuditViewerState.exporting, rx.spinner(size="1"), rx.icon("download", size=14)),
            "Export CSV",
            variant="soft",
            on_click=AuditViewerState.export,
            disabled=AuditViewerState.exporting,
            id="export-csv",
        ),
        rx.button(
            rx.cond(AuditViewerState.verifying, rx.spinner(size="1"), rx.icon("shield-check", size=14)),
            "Verify integrity",
            variant="soft",
            color_scheme="green",
            on_click=AuditViewerState.verify,
            disabled=AuditViewerState.verifying,
            id="verify-integrity",
        ),
        width="100%",
        align="center",
        spacing="3",
    )


def pager() -> rx.Component:
    return rx.hstack(
        rx.button(
            rx.icon("chevron-left", size=14),
            "Newer",
            variant="soft",
            size="1",
            on_click=AuditViewerState.newer,
            disabled=AuditViewerState.page_number <= 1,
            id="newer-page",
        ),
        rx.text("Page ", AuditViewerState.page_number, size="2", id="page-label"),
        rx.button(
            "Older",
            rx.icon("chevron-right", size=14),
            variant="soft",
            size="1",
            on_click=AuditViewerState.older,
            disabled=~AuditViewerState.has_older,
            id="older-page",
        ),
        rx.spacer(),
        rx.button(
            rx.icon("refresh-cw", size=14), "Newest", variant="ghost", size="1", on_click=AuditViewerState.refresh
        ),
        width="100%",
        align="center",
        spacing="3",
    )


@billy_page("/settings/audit", "Audit log", on_load=[AuditViewerState.load], audience=Audience.OWNER)
def audit_page() -> rx.Component:
    return rx.cond(
        AuditViewerState.refused,
        rx.callout(AuditViewerState.error, icon="lock", color_scheme="amber", id="audit-refused"),
        rx.vstack(
            toolbar(),
            verify_result(),
            message_callout(AuditViewerState.message, AuditViewerState.message_kind),
            rx.cond(
                AuditViewerState.showing_ids != "",
                rx.callout(
                    rx.hstack(
                        rx.text("Showing only the rows a link named: ", AuditViewerState.showing_ids, "."),
                        rx.button("Show every row", size="1", variant="soft", on_click=AuditViewerState.clear),
                        align="center",
                        spacing="3",
                        wrap="wrap",
                    ),
                    icon="filter",
                    id="audit-showing-ids",
                ),
            ),
            audit_filters(),
            rows_table(
                AuditViewerState.rows,
                audit_row,
                ("Time", "Who", "Action", "Targets", "Amount", "Source", "Outcome"),
                empty=rx.text("No audit rows match these filters.", size="2", color_scheme="gray", id="audit-empty"),
                id="audit-table",
            ),
            pager(),
            detail_dialog(),
            spacing="4",
            width="100%",
            align="stretch",
        ),
    )
