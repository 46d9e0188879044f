"""The payment-update email: a template a person may edit, filled in per customer (issue 12).

The subject and body are text with a small fixed set of placeholders (`PLACEHOLDERS`). Filling
them in is a single pass of plain replacement of those names only, never `str.format`: a
template cannot reach attributes or indexes (`{name.__class__}`), and a customer's name that
itself contains `{link}` stays as typed, because replaced text is not scanned again. Any other
`{…}` is refused in words before anything is sent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from services.errors import ValidationFailed
from services.mail_templates import compose_plain
from services.mailer import OutgoingMail

# What each placeholder becomes, in the words the dialog shows beside the template.
PLACEHOLDERS: dict[str, str] = {
    "name": "the customer's name",
    "brand": "the card's brand (Visa, Mastercard, …)",
    "last4": "the card's last four digits",
    "amount": "the amount that failed",
    "link": "the invoice's payment link, or words asking them to update their card when Stripe has none",
    "org": "your organisation's name",
}
MAX_SUBJECT = 200  # characters of the subject template
MAX_BODY = 5000  # characters of the body template

DEFAULT_SUBJECT = "Your payment to {org} did not go through"
DEFAULT_BODY = (
    "Hello {name},\n\n"
    "We tried to charge {amount} to your {brand} card ending in {last4}, but the payment did not go through.\n\n"
    "{link}\n\n"
    "Thank you,"
)
LINK_WORDS = "Please update your card and pay the invoice here: {url}"
NO_LINK_WORDS = (
    "Please update the card we have on file for you (or reply to this email and we will help), "
    "so that we can try the payment again."
)

# A placeholder as people type one: a short name between braces, on one line.
_PLACEHOLDER = re.compile(r"\{([^{}\n]{0,40})\}")


def link_words(url: str) -> str:
    """What `{link}` becomes: the payment link in a sentence, or the request to update the card."""
    return LINK_WORDS.format(url=url) if url else NO_LINK_WORDS


def check_template(text: object, what: str, limit: int, *, one_line: bool = False) -> str:
    """A subject or body template as typed, refused in words when it cannot be sent as it is."""
    if not isinstance(text, str):
        raise ValidationFailed(f"The {what} must be text.")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ValidationFailed(f"Write a {what} for the email.")
    if len(text) > limit:
        raise ValidationFailed(f"The {what} can be at most {limit:,} characters long; shorten it.")
    if one_line and "\n" in text:
        raise ValidationFailed(f"The {what} must fit on one line.")
    for ch in text:
        if (unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t") or ch in "\u2028\u2029":
            raise ValidationFailed(f"The {what} contains a character an email cannot carry; retype it.")
    unknown = [name for name in _PLACEHOLDER.findall(text) if name not in PLACEHOLDERS]
    if unknown:
        allowed = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
        shown = unknown[0].strip() or " "
        raise ValidationFailed(
            f"The {what} uses {{{shown}}}, which Billy cannot fill in. Use only {allowed}, "
            "or remove the braces around that word."
        )
    return text


def render(template: str, values: Mapping[str, str]) -> str:
    """`template` with each known placeholder replaced by its value, in one pass (see module docstring)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)] if m.group(1) in PLACEHOLDERS else m.group(0), template)


def payment_update_mail(*, to: str, subject: str, body: str, org_name: str) -> OutgoingMail:
    """One customer's email from the filled-in subject and body: the body's first paragraph
    greets, the rest follow, and the organisation signs (`compose_plain`'s layout)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    return compose_plain(
        to=to,
        subject=" ".join(subject.split()),
        greeting=paragraphs[0] if paragraphs else "Hello,",
        paragraphs=paragraphs[1:],
        signature=" ".join(org_name.split()) or "Our team",
    )
