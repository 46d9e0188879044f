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
