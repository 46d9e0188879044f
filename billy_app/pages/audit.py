"""`/settings/audit` ("Audit log"): every action attempt, filtered, opened, exported and verified.

The Owner's page. Anyone else meets a refusal and no rows; their events are refused by
`services.audit` all the same (and logged), whatever this page would show."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import message_callout, shell
from billy_app.components.tables import header
from billy_app.state.audit_viewer import OUTCOME_CHOICES, SOURCE_CHOICES, AuditViewerState
from billy_app.state.session import SessionState

S = AuditViewerState
OUTCOME_COLORS = {"ok": "green", "denied": "amber", "failed": "red"}


def when(iso_value: rx.Var[str]) -> rx.Component:
    """A UTC time in the viewer's zone, to the second."""
    return rx.moment(iso_value, format="YYYY-MM-DD HH:mm:ss", local=True)


def outcome_badge(outcome: rx.Var[str], label: rx.Var[str]) -> rx.Component:
    return rx.badge(
        label,
        color_scheme=rx.match(outcome, *[(k, v) for k, v in OUTCOME_COLORS.items()], "gray"),
        variant="soft",
        class_name="outcome-badge",
    )


def choice(choices: list[tuple[str, str]], value: rx.Var[str], on_change, name: str, label: str) -> rx.Component:  # type: ignore[no-untyped-def]
    return rx.select.root(
        rx.select.trigger(id=f"audit-{name}", aria_label=label, min_width="9em"),
        rx.select.content(*[rx.select.item(text, value=key) for key, text in choices]),
        value=value,
        on_change=on_change,
        name=name,
    )


def labelled(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="1", color_scheme="gray"), control, spacing="1")


def filter_bar() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.flex(
                labelled(
                    "Person",
                    rx.input(
                        name="person",
                        id="audit-person",
                        placeholder="alice@example.com or alice",
                        value=S.f_person,
                        on_change=S.set_person,
                        width="16em",
                    ),
                ),
                labelled(
                    "Action",
                    rx.input(
                        name="action",
                        id="audit-action",
                        placeholder="team.invite, team or team.inv*",
                        value=S.f_action,
                        on_change=S.set_action,
                        custom_attrs={"list": "audit-known-actions"},
                        width="14em",
                    ),
                ),
                rx.el.datalist(rx.foreach(S.actions, lambda a: rx.el.option(value=a)), id="audit-known-actions"),
                labelled("Source", choice(SOURCE_CHOICES, S.f_source, S.set_source, "source", "Source")),
                labelled("Outcome", choice(OUTCOME_CHOICES, S.f_outcome, S.set_outcome, "outcome", "Outcome")),
                labelled(
                    "From",
                    rx.input(type="date", name="from", id="audit-from", value=S.f_from, on_change=S.set_from),
                ),
                labelled("To", rx.input(type="date", name="to", id="audit-to", value=S.f_to, on_change=S.set_to)),
                rx.hstack(
                    rx.button(rx.icon("filter", size=14), "Apply", type="submit", id="apply-filters"),
                    rx.button("Clear", type="button", variant="soft", color_scheme="gray", on_click=S.clear),
                    spacing="2",
                ),
                wrap="wrap",
                spacing="3",
                align="end",
            ),
            rx.text(
                "Dates are whole days in your time zone (",
                S.zone,
                "); times below are shown in it too.",
                size="1",
                color_scheme="gray",
            ),
            rx.cond(
                S.problem != "",
                rx.callout(S.problem, icon="triangle-alert", color_scheme="red", id="filter-problem", width="100%"),
            ),
            spacing="2",
            width="100%",
        ),
        on_submit=S.apply,
        reset_on_submit=False,
        width="100%",
    )


def audit_row(r: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(when(r["at"]), size="2"),
                rx.button("#", r["id"], size="1", variant="ghost", type="button", class_name="open-detail"),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.vstack(rx.text(r["who"], size="2"), rx.text(r["role"], size="1", color_scheme="gray"), spacing="0")
        ),
        rx.table.cell(
            rx.vstack(
                rx.code(r["action"], variant="ghost"),
                rx.cond(r["error"] != "", rx.text(r["error"], size="1", color_scheme="red", max_width="24em")),
                spacing="1",
            )
        ),
        rx.table.cell(rx.text(r["targets"], size="1", max_width="14em", class_name="audit-targets")),
        rx.table.cell(r["amount"]),
        rx.table.cell(r["source"]),
        rx.table.cell(outcome_badge(r["outcome"], r["outcome_label"])),
        on_click=S.open_detail(r["id"]),
        cursor="pointer",
        class_name="audit-row",
        custom_attrs={"data-id": r["id"], "data-action": r["action"]},
    )


def detail_item(label: str, value: rx.Component | rx.Var[str], key: str) -> rx.Component:
    return rx.data_list.item(
        rx.data_list.label(label, min_width="9em"),
        rx.data_list.value(value, custom_attrs={"data-field": key}),
    )


def mono(value: rx.Var[str]) -> rx.Component:
    return rx.code(value, variant="ghost", size="1", word_break="break-all")


def detail_dialog() -> rx.Component:
    d = S.detail
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Audit row #", d["id"]),
            rx.dialog.description(d["action"], " · ", d["outcome_label"], size="2", color_scheme="gray"),
            rx.data_list.root(
                detail_item("Time (yours)", when(d["at"]), "at"),
                detail_item("Time (UTC)", d["at_utc"], "at_utc"),
                detail_item(
                    "Who",
                    rx.hstack(
                        rx.text(d["who"]),
                        rx.badge(d["role"], variant="soft"),
                        rx.text("id ", d["actor_id"], size="1", color_scheme="gray"),
                    ),
                    "who",
                ),
                detail_item("Source", d["source"], "source"),
                detail_item("Client address", d["client_address"], "client_address"),
                detail_item("User agent", rx.text(d["user_agent"], size="1"), "user_agent"),
                detail_item("Action", mono(d["action"]), "action"),
                detail_item("Targets", d["targets"], "targets"),
                detail_item("Amount", d["amount"], "amount"),
                detail_item("Outcome", outcome_badge(d["outcome"], d["outcome_label"]), "outcome"),
                rx.cond(d["error"] != "", detail_item("Error", rx.text(d["error"], color_scheme="red"), "error")),
                rx.cond(
                    d["details"] != "",
                    detail_item(
                        "Details",
                        rx.el.pre(d["details"], style={"white_space": "pre-wrap", "margin": "0", "font_size": "12px"}),
                        "details",
                    ),
                ),
                detail_item("Previous hash", mono(d["prev_hash"]), "prev_hash"),
                detail_item("Hash", mono(d["hash"]), "hash"),
                detail_item(
                    "Seal",
                    rx.cond(
                        d["sealed"] == "yes",
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
        open=S.detail_open,
        on_open_change=S.set_detail_open,
    )


def verify_result() -> rx.Component:
    return rx.cond(
        S.verify_kind != "",
        rx.callout(
            S.verify_message,
            icon=rx.cond(S.verify_kind == "ok", "shield-check", "shield-alert"),
            color_scheme=rx.cond(S.verify_kind == "ok", "green", "red"),
            id="verify-result",
            custom_attrs={"data-kind": S.verify_kind},
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
            rx.cond(S.exporting, rx.spinner(size="1"), rx.icon("download", size=14)),
            "Export CSV",
            variant="soft",
            on_click=S.export,
            disabled=S.exporting,
            id="export-csv",
        ),
        rx.button(
            rx.cond(S.verifying, rx.spinner(size="1"), rx.icon("shield-check", size=14)),
            "Verify integrity",
            variant="soft",
            color_scheme="green",
            on_click=S.verify,
            disabled=S.verifying,
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
            on_click=S.newer,
            disabled=S.page_number <= 1,
            id="newer-page",
        ),
        rx.text("Page ", S.page_number, size="2", id="page-label"),
        rx.button(
            "Older",
            rx.icon("chevron-right", size=14),
            variant="soft",
            size="1",
            on_click=S.older,
            disabled=~S.has_older,
            id="older-page",
        ),
        rx.spacer(),
        rx.button(rx.icon("refresh-cw", size=14), "Newest", variant="ghost", size="1", on_click=S.refresh),
        width="100%",
        align="center",
        spacing="3",
    )


@rx.page(route="/settings/audit", title="Audit log · Agent Billy", on_load=[SessionState.require_member, S.load])
def audit_page() -> rx.Component:
    return shell(
        rx.cond(
            S.refused,
            rx.callout(S.error, icon="lock", color_scheme="amber", id="audit-refused"),
            rx.vstack(
                toolbar(),
                verify_result(),
                message_callout(S.message, S.message_kind),
                filter_bar(),
                rx.cond(
                    S.rows.length() == 0,
                    rx.text("No audit rows match these filters.", size="2", color_scheme="gray", id="audit-empty"),
                    rx.table.root(
                        header("Time", "Who", "Action", "Targets", "Amount", "Source", "Outcome"),
                        rx.table.body(rx.foreach(S.rows, audit_row)),
                        width="100%",
                        id="audit-table",
                    ),
                ),
                pager(),
                detail_dialog(),
                spacing="4",
                width="100%",
                align="stretch",
            ),
        ),
        title="Audit log",
    )
