"""The payment reminder Billy emails a customer about an open invoice (issue 12).

Billy sends it through its own mailer rather than asking Stripe to resend the invoice, so the
words say how late the payment is and every reminder leaves one audit row. The pay link is
Stripe's hosted invoice page, where the customer sees the invoice and pays it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.mail_templates import compose_plain
from services.mailer import OutgoingMail


def _one_line(value: str) -> str:
    """A value fit for a subject line (no line breaks, no runs of spaces)."""
    return " ".join(value.split())


def format_day(moment: datetime) -> str:
    """E.g. "5 March 2026": a due day as people write it, whatever the reader's locale (UTC)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given for a due date")
    at = moment.astimezone(UTC)
    return f"{at.day} {at:%B %Y}"


def lateness(days_overdue: int | None) -> str:
    """ "3 days overdue", "1 day overdue", "due today" (past its due moment today), or "" when not late."""
    if days_overdue is None:
        return ""
    if days_overdue == 0:
        return "due today"
    return f"{days_overdue} day{'' if days_overdue == 1 else 's'} overdue"


def invoice_reminder_mail(
    *,
    to: str,
    org_name: str,
    number: str,
    amount_label: str,
    due: datetime | None,
    days_overdue: int | None,
    pay_link: str,
) -> OutgoingMail:
    """To the customer: which invoice, how much is still due, how late it is, and where to pay."""
    org, number = _one_line(org_name), _one_line(number)
    late = lateness(days_overdue)
    due_words = f" (it was due on {format_day(due)})" if due is not None and late else ""
    if late and late != "due today":
        subject = f"Reminder: invoice {number} from {org} is {late}"
        opening = f"Invoice {number} from {org} for {amount_label} is {late}{due_words}."
    elif late:
        subject = f"Reminder: invoice {number} from {org} is due today"
        opening = f"Invoice {number} from {org} for {amount_label} is due today."
    elif due is not None:
        subject = f"Reminder: invoice {number} from {org} is due on {format_day(due)}"
        opening = f"Invoice {number} from {org} for {amount_label} is due on {format_day(due)}."
    else:
        subject = f"Reminder: invoice {number} from {org}"
        opening = f"Invoice {number} from {org} for {amount_label} is waiting for payment."
    return compose_plain(
        to=to,
        subject=subject,
        greeting="Hello,",
        paragraphs=[
            opening,
            f"You can see the invoice and pay it online here:\n{pay_link}",
            f"If you have already paid, thank you, and please ignore this email. If you have a question "
            f"about this invoice, please contact {org}.",
        ],
        signature=org,
    )
