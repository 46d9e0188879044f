"""`/approvals` ("Refund requests"): refunds over their requester's cap, waiting for someone
whose cap covers them, and the caller's own requests with what became of them."""

from __future__ import annotations

import reflex as rx

from billy_app.components.layout import local_time, message_callout
from billy_app.components.page_frame import billy_page
from billy_app.components.tables import colored_badge, name_and_id, rows_table, small_gray
from billy_app.state.approvals import ApprovalsState, Decision, RequestRow

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
        rx.text(rx.moment(iso_value, from_now=True), size="2"), small_gray(local_time(iso_value)), spacing="0"
    )


def charge_cell(request: rx.Var[RequestRow]) -> rx.Component:
    return rx.table.cell(
        name_and_id(
            rx.cond(
                request.customer_id != "",
                rx.link(request.charge, href="/customers/" + request.customer_id, size="2"),
                rx.text(request.charge, size="2"),
            ),
            request.charge_id,
        )
    )


def note_text(text: rx.Var[str]) -> rx.Component:
    return rx.text(text, size="2", white_space="pre-wrap", max_width="28em")


def status_badge(request: rx.Var[RequestRow]) -> rx.Component:
    return colored_badge(request.status_label, request.status, STATUS_COLORS, "blue")


def queue_row(request: rx.Var[RequestRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(age(request.created)),
        charge_cell(request),
        rx.table.cell(request.customer),
        rx.table.cell(
            rx.vstack(
                rx.text(request.amount, weight="medium"),
                rx.text(request.reason, size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        rx.table.cell(request.requester),
        rx.table.cell(note_text(request.note)),
        rx.table.cell(
            rx.cond(
                request.can_decide,
                rx.hstack(
                    rx.button(
                        "Approve",
                        size="1",
                        color_scheme="green",
                        on_click=ApprovalsState.open_decision(request.id, Decision.APPROVE),
                        class_name="approve-button",
                    ),
                    rx.button(
                        "Decline",
                        size="1",
                        variant="soft",
                        color_scheme="red",
                        on_click=ApprovalsState.open_decision(request.id, Decision.DECLINE),
                        class_name="decline-button",
                    ),
                    spacing="2",
                ),
                rx.text(
                    rx.cond(request.mine, "Your request", "Needs someone with a higher limit"),
                    size="1",
                    color_scheme="gray",
                ),
            )
        ),
        class_name="request-row",
        custom_attrs={"data-request": request.id},
    )


def my_row(request: rx.Var[RequestRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(age(request.created)),
        charge_cell(request),
        rx.table.cell(rx.text(request.amount, weight="medium")),
        rx.table.cell(note_text(request.note)),
        rx.table.cell(status_badge(request)),
        rx.table.cell(
            rx.vstack(
                rx.cond(request.decider != "", rx.text(request.decider, size="2")),
                rx.cond(request.decided != "", rx.text(local_time(request.decided), size="1", color_scheme="gray")),
                rx.cond(request.decision_note != "", note_text(request.decision_note)),
                rx.cond(request.error != "", rx.text(request.error, size="1", color_scheme="red")),
                rx.cond(request.refund_id != "", rx.text(request.refund_id, size="1", color_scheme="gray")),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.cond(
                request.status == "pending",
                rx.button(
                    "Withdraw",
                    size="1",
                    variant="soft",
                    color_scheme="gray",
                    on_click=ApprovalsState.withdraw(request.id),
                    class_name="withdraw-button",
                ),
            )
        ),
        class_name="my-request-row",
        custom_attrs={"data-request": request.id},
    )


def decision_dialog() -> rx.Component:
    approving = ApprovalsState.decision_kind == Decision.APPROVE
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
        rows_table(
            ApprovalsState.queue,
            queue_row,
            ("Asked", "Charge", "Customer", "Amount", "Requested by", "Note", ""),
            empty=rx.text("No refund requests are waiting.", size="2", color_scheme="gray", id="queue-empty"),
            id="queue-table",
        ),
        spacing="3",
        width="100%",
        align="stretch",
    )


@billy_page("/approvals", "Refund requests", on_load=[ApprovalsState.load])
def approvals_page() -> rx.Component:
    return rx.fragment(
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
        rows_table(
            ApprovalsState.mine,
            my_row,
            ("Asked", "Charge", "Amount", "Your note", "Status", "Decision", ""),
            empty=rx.text(
                "You have not asked for any refund approvals. A refund over your limit can be sent here "
                "from a customer's page.",
                size="2",
                color_scheme="gray",
            ),
            id="my-requests-table",
        ),
        decision_dialog(),
    )
