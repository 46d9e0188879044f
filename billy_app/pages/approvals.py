"""`/approvals` ("Refund requests"): refunds over their requester's cap, waiting for someone
whose cap covers them, and the caller's own requests with what became of them."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time, message_callout, shell
from billy_app.components.tables import header
from billy_app.state.approvals import ApprovalsState
from billy_app.state.session import SessionState

STATUS_COLORS = {
    "pending": "amber",
    "approved": "green",
    "declined": "gray",
    "failed": "red",
    "withdrawn": "gray",
}


def age(iso_value: rx.Var[str]) -> rx.Component:
    """How long ago, and the exact time in the viewer's zone."""
    return rx.vstack(
        rx.text(rx.moment(iso_value, from_now=True), size="2"),
        rx.text(local_time(iso_value), size="1", color_scheme="gray"),
        spacing="0",
    )


def charge_cell(r: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.cell(
        rx.vstack(
            rx.cond(
                r["customer_id"] != "",
                rx.link(r["charge"], href="/customers/" + r["customer_id"], size="2"),
                rx.text(r["charge"], size="2"),
            ),
            rx.text(r["charge_id"], size="1", color_scheme="gray"),
            spacing="0",
        )
    )


def note_text(text: rx.Var[str]) -> rx.Component:
    return rx.text(text, size="2", white_space="pre-wrap", max_width="28em")


def status_badge(r: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.badge(
        r["status_label"],
        color_scheme=rx.match(r["status"], *[(k, v) for k, v in STATUS_COLORS.items()], "blue"),
        variant="soft",
    )


def queue_row(r: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(age(r["created"])),
        charge_cell(r),
        rx.table.cell(r["customer"]),
        rx.table.cell(
            rx.vstack(
                rx.text(r["amount"], weight="medium"),
                rx.text(r["reason"], size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        rx.table.cell(r["requester"]),
        rx.table.cell(note_text(r["note"])),
        rx.table.cell(
            rx.cond(
                r["can_decide"] == "yes",
                rx.hstack(
                    rx.button(
                        "Approve",
                        size="1",
                        color_scheme="green",
                        on_click=ApprovalsState.open_decision(r["id"], "approve"),
                        class_name="approve-button",
                    ),
                    rx.button(
                        "Decline",
                        size="1",
                        variant="soft",
                        color_scheme="red",
                        on_click=ApprovalsState.open_decision(r["id"], "decline"),
                        class_name="decline-button",
                    ),
                    spacing="2",
                ),
                rx.text(
                    rx.cond(r["mine"] == "yes", "Your request", "Needs someone with a higher limit"),
                    size="1",
                    color_scheme="gray",
                ),
            )
        ),
        class_name="request-row",
        custom_attrs={"data-request": r["id"]},
    )


def my_row(r: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(age(r["created"])),
        charge_cell(r),
        rx.table.cell(rx.text(r["amount"], weight="medium")),
        rx.table.cell(note_text(r["note"])),
        rx.table.cell(status_badge(r)),
        rx.table.cell(
            rx.vstack(
                rx.cond(r["decider"] != "", rx.text(r["decider"], size="2")),
                rx.cond(r["decided"] != "", rx.text(local_time(r["decided"]), size="1", color_scheme="gray")),
                rx.cond(r["decision_note"] != "", note_text(r["decision_note"])),
                rx.cond(r["error"] != "", rx.text(r["error"], size="1", color_scheme="red")),
                rx.cond(r["refund_id"] != "", rx.text(r["refund_id"], size="1", color_scheme="gray")),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.cond(
                r["status"] == "pending",
                rx.button(
                    "Withdraw",
                    size="1",
                    variant="soft",
                    color_scheme="gray",
                    on_click=ApprovalsState.withdraw(r["id"]),
                    class_name="withdraw-button",
                ),
            )
        ),
        class_name="my-request-row",
        custom_attrs={"data-request": r["id"]},
    )


def decision_dialog() -> rx.Component:
    approving = ApprovalsState.decision_kind == "approve"
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.cond(approving, "Approve this refund", "Decline this refund")),
            rx.dialog.description(ApprovalsState.decision_summary, size="2"),
            rx.form(
                rx.vstack(
                    rx.cond(
                        approving,
                        rx.callout(
                            "The refund is made now, in your name, and cannot be undone. "
                            "Your own refund limit must cover it.",
                            icon="info",
                        ),
                    ),
                    rx.text_area(
                        name="note",
                        placeholder=rx.cond(
                            approving, "A note for the record (optional)", "Why is it declined? (required)"
                        ),
                        required=~approving,
                        max_length=1000,
                        rows="3",
                        width="100%",
                        id="decision-note",
                    ),
                    rx.cond(
                        ApprovalsState.decision_problem != "",
                        rx.callout(
                            ApprovalsState.decision_problem,
                            color_scheme="red",
                            icon="triangle-alert",
                            id="decision-problem",
                        ),
                    ),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray", type="button")),
                        rx.button(
                            rx.cond(ApprovalsState.busy, rx.spinner(size="1")),
                            rx.cond(approving, "Approve and refund", "Decline"),
                            type="submit",
                            disabled=ApprovalsState.busy,
                            color_scheme=rx.cond(approving, "green", "red"),
                            id="confirm-decision",
                        ),
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                    margin_top="1em",
                ),
                on_submit=ApprovalsState.decide,
            ),
            max_width="34em",
        ),
        open=ApprovalsState.decision_open,
        on_open_change=ApprovalsState.set_decision_open,
    )


def queue_section() -> rx.Component:
    return rx.vstack(
        rx.heading("Waiting for approval", size="4"),
        rx.cond(
            ApprovalsState.queue.length() == 0,
            rx.text("No refund requests are waiting.", size="2", color_scheme="gray", id="queue-empty"),
            rx.table.root(
                header("Asked", "Charge", "Customer", "Amount", "Requested by", "Note", ""),
                rx.table.body(rx.foreach(ApprovalsState.queue, queue_row)),
                width="100%",
                id="queue-table",
            ),
        ),
        spacing="3",
        width="100%",
        align="stretch",
    )


@rx.page(
    route="/approvals",
    title="Refund requests · Agent Billy",
    on_load=[SessionState.require_member, ApprovalsState.load],
)
def approvals_page() -> rx.Component:
    return shell(
        rx.hstack(
            rx.text(
                "Refunds over someone's limit wait here for a person whose limit covers them. "
                "Approving makes the refund at once, in the approver's name.",
                size="2",
                color_scheme="gray",
            ),
            rx.spacer(),
            rx.button(
                rx.icon("refresh-cw", size=14), "Refresh", variant="soft", size="1", on_click=ApprovalsState.refresh
            ),
            width="100%",
            align="center",
        ),
        message_callout(ApprovalsState.message, ApprovalsState.message_kind),
        rx.cond(ApprovalsState.error != "", rx.callout(ApprovalsState.error, color_scheme="red", icon="lock")),
        rx.cond(ApprovalsState.can_approve, queue_section()),
        rx.heading("My requests", size="4"),
        rx.cond(
            ApprovalsState.mine.length() == 0,
            rx.text(
                "You have not asked for any refund approvals. A refund over your limit can be sent here "
                "from a customer's page.",
                size="2",
                color_scheme="gray",
            ),
            rx.table.root(
                header("Asked", "Charge", "Amount", "Your note", "Status", "Decision", ""),
                rx.table.body(rx.foreach(ApprovalsState.mine, my_row)),
                width="100%",
                id="my-requests-table",
            ),
        ),
        decision_dialog(),
        title="Refund requests",
    )
