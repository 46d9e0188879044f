"""`/failed-payments`: failed payments of a chosen period by reason, their customers (repeat
customers marked, those without an email too), and payment-update emails for the roles that may
send them. Stable ids for tests: `#failed-period`, `#failed-total-count`, `#failed-by-reason-chart`,
`#email-selected-customers`, `#email-subject`, `#email-body`, `#send-payment-emails`."""

from __future__ import annotations

import reflex as rx

from billy_app.components.failed_payments import (
    email_control,
    email_dialog,
    period_picker,
    reason_chart,
    reason_group,
    summary,
)
from billy_app.components.page_frame import billy_page
from billy_app.state.failed_payments import FailedPaymentsState


@billy_page(
    "/failed-payments",
    "Failed payments",
    on_load=[FailedPaymentsState.load, FailedPaymentsState.follow],
)
def failed_payments_page() -> rx.Component:
    return rx.fragment(
        period_picker(),
        rx.cond(
            FailedPaymentsState.error != "",
            rx.callout(FailedPaymentsState.error, color_scheme="red", icon="triangle-alert", id="failed-error"),
        ),
        rx.hstack(summary(), rx.spacer(), email_control(), align="center", width="100%", wrap="wrap"),
        reason_chart(),
        rx.vstack(rx.foreach(FailedPaymentsState.groups, reason_group), spacing="4", width="100%"),
        email_dialog(),
    )
