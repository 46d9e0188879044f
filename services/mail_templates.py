"""The emails Billy sends, in plain English: pure functions from facts to an `OutgoingMail`.

Every email has a plain-text body (the link on a line of its own, so any client
can open it) and a simple HTML twin in which every interpolated value is escaped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from services.mailer import OutgoingMail

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def format_expiry(moment: datetime) -> str:
    """E.g. "28 November 2026, 14:05 UTC": one unambiguous form whatever the reader's locale."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given for a link expiry")
    at = moment.astimezone(UTC)
    return f"{at.day} {_MONTHS[at.month - 1]} {at.year}, {at:%H:%M} UTC"


def _one_line(value: str) -> str:
    """A user-typed value fit for a subject line (no line breaks, no runs of spaces)."""
    return " ".join(value.split())


def _compose(*, to: str, subject: str, before: list[str], action: str, link: str, after: list[str]) -> OutgoingMail:
    """One layout for every email: paragraphs, the action link, more paragraphs."""
    text = "\n\n".join(["Hello,", *before, f"{action}:\n{link}", *after, "— Agent Billy"]) + "\n"
    href = escape(link)
    html_paragraphs = [
        "Hello,",
        *map(escape, before),
        f'<a href="{href}">{escape(action)}</a>',
        f"If the button does not work, paste this address into your browser:<br>{href}",
        *map(escape, after),
        "— Agent Billy",
    ]
    html = (
        '<!doctype html>\n<html><body style="font-family: sans-serif; line-height: 1.5">\n'
        + "\n".join(f"<p>{p}</p>" for p in html_paragraphs)
        + "\n</body></html>\n"
    )
    return OutgoingMail(to=to, subject=subject, text=text, html=html)


def invite_mail(
    *, to: str, org_name: str, inviter_email: str, role_label: str, link: str, expires_at: datetime
) -> OutgoingMail:
    org, inviter = _one_line(org_name), _one_line(inviter_email)
    return _compose(
        to=to,
        subject=f"{inviter} invited you to {org} on Agent Billy",
        before=[f"{inviter} invited you to {org} on Agent Billy as {role_label}."],
        action="Accept the invitation and choose your password",
        link=link,
        after=[
            f"The link works once and expires on {format_expiry(expires_at)}.",
            "If you did not expect this invitation, ignore this email: nothing happens unless the link is used.",
        ],
    )


def password_reset_mail(*, to: str, link: str, expires_at: datetime) -> OutgoingMail:
    return _compose(
        to=to,
        subject="Reset your Agent Billy password",
        before=[f"Someone, hopefully you, asked to reset the password of the Agent Billy account {to}."],
        action="Choose a new password",
        link=link,
        after=[
            f"The link works once and expires on {format_expiry(expires_at)}.",
            "If you did not ask, ignore this email: your password stays the same.",
        ],
    )


def compose_plain(*, to: str, subject: str, greeting: str, paragraphs: list[str], signature: str) -> OutgoingMail:
    """A mail with no link to follow (a customer's receipt-like notice), in the same plain style."""
    text = "\n\n".join([greeting, *paragraphs, f"— {signature}"]) + "\n"
    html_paragraphs = [escape(greeting), *map(escape, paragraphs), f"— {escape(signature)}"]
    html = (
        '<!doctype html>\n<html><body style="font-family: sans-serif; line-height: 1.5">\n'
        + "\n".join(f"<p>{p}</p>" for p in html_paragraphs)
        + "\n</body></html>\n"
    )
    return OutgoingMail(to=to, subject=subject, text=text, html=html)


def _charge_words(description: str, order_number: str) -> str:
    """What the customer paid for, as they would recognise it: the description and/or order number."""
    description, order_number = _one_line(description), _one_line(order_number)
    if description and order_number and order_number not in description:
        return f"“{description}” (order {order_number})"
    if description:
        return f"“{description}”"
    if order_number:
        return f"order {order_number}"
    return "your payment"


def refund_confirmation_mail(
    *, to: str, org_name: str, amount_label: str, description: str = "", order_number: str = ""
) -> OutgoingMail:
    """To the customer after a refund: how much, for what, and when the money shows."""
    org = _one_line(org_name)
    return compose_plain(
        to=to,
        subject=f"{org} refunded {amount_label} to you",
        greeting="Hello,",
        paragraphs=[
            f"{org} has refunded {amount_label} for {_charge_words(description, order_number)}.",
            "The money goes back to the card or account you paid with. You'll see it in 5–10 business days, "
            "depending on your bank.",
            f"If you have a question about this refund, please contact {org}.",
        ],
        signature=org,
    )


def refund_request_mail(
    *,
    to: str,
    org_name: str,
    requester_email: str,
    amount_label: str,
    charge_label: str,
    customer_label: str,
    note: str,
    link: str,
) -> OutgoingMail:
    """To a member whose refund limit covers a request that waits for a decision."""
    requester, org = _one_line(requester_email), _one_line(org_name)
    on_what = _one_line(charge_label) + (f" ({_one_line(customer_label)})" if customer_label else "")
    return _compose(
        to=to,
        subject=f"{requester} asks you to approve a {amount_label} refund",
        before=[
            f"{requester} asked for a refund of {amount_label} on {on_what} in {org}. It is over their "
            "refund limit, and yours covers it.",
            f"Their note: {note}",
        ],
        action="Approve or decline it",
        link=link,
        after=["Anyone whose limit covers the request may decide; the first decision counts."],
    )


def refund_decision_mail(
    *,
    to: str,
    decider_email: str,
    approved: bool,
    amount_label: str,
    charge_label: str,
    refund_id: str,
    note: str,
    link: str,
) -> OutgoingMail:
    """To the member who asked, once someone approved (the refund is made) or declined their request."""
    decider, what = _one_line(decider_email), _one_line(charge_label)
    if approved:
        subject = f"Your {amount_label} refund request was approved"
        before = [
            f"{decider} approved your request to refund {amount_label} on {what}. "
            f"The refund is made (Stripe refund {refund_id}); the customer sees it in 5–10 business days."
        ]
    else:
        subject = f"Your {amount_label} refund request was declined"
        before = [f"{decider} declined your request to refund {amount_label} on {what}. No refund was made."]
    if note:
        before.append(f"Their note: {note}")
    return _compose(to=to, subject=subject, before=before, action="See your refund requests", link=link, after=[])


def stripe_key_rejected_mail(*, to: str, org_name: str, key_hint: str, link: str) -> OutgoingMail:
    """To the Owner, once, when Stripe stops accepting Billy's key (revoked, rolled or expired)."""
    org = _one_line(org_name)
    return _compose(
        to=to,
        subject=f"Stripe rejected Billy's key for {org}",
        before=[
            f"Stripe no longer accepts the restricted key ending {key_hint} that Billy uses for {org}: "
            "it was revoked, rolled or has expired in the Stripe Dashboard.",
            "Until you replace it, Billy shows the data it already synced but cannot refund, change anything "
            "in Stripe or pick up new payments.",
        ],
        action="Rotate the key in Settings → Stripe connection",
        link=link,
        after=[
            "Create a new restricted key in the Stripe Dashboard (Developers → API keys) with the same six "
            "permissions, then paste it on that page. This email is sent once; the banner in Billy stays until "
            "the key is replaced.",
        ],
    )
