"""The control plane's mail (trial reminders, account sign-in links), sent by the instance's own mailer.

`services.mailer.SmtpMailer` already retries transient failures and words SMTP errors for
people; the control plane reuses it with its own `BILLY_CONTROLPLANE_SMTP_*` settings. It has no
secret store, so the SMTP password is handed over from its settings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from controlplane.config import ControlPlaneSettings
from controlplane.store import Organisation
from services.config import Settings
from services.mailer import OutgoingMail, SmtpMailer
from services.plans import TRIAL_DAYS


class Mailer(Protocol):
    def send(self, mail: OutgoingMail) -> None: ...


class _GivenPassword:
    """A secret store holding only the SMTP password from the control plane's settings."""

    def __init__(self, password: str) -> None:
        self._password = password

    def get(self, name: str, *, fresh: bool = False) -> str | None:
        return self._password or None

    def set(self, name: str, value: str) -> None:
        self._password = value

    def create_if_absent(self, name: str, value: str) -> str:
        if not self._password:
            self._password = value
        return self._password

    def delete(self, name: str) -> None:
        self._password = ""

    def disable_versions_except_latest(self, name: str) -> int:
        return 0

    def share_changes(self) -> None:
        """Nothing to share: the password lives in this object only."""


def smtp_mailer(settings: ControlPlaneSettings) -> SmtpMailer:
    """A mailer for the SMTP server in the control plane's settings."""
    smtp = Settings(
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_user=settings.smtp_user,
        smtp_tls=settings.smtp_tls,
        mail_from=settings.mail_from,
    )
    return SmtpMailer(smtp, secrets=_GivenPassword(settings.smtp_password))


def when_words(moment: datetime | None) -> str:
    """A moment as the control plane's mail and pages write it: "20 December 2026 at 14:05 UTC"."""
    return moment.strftime("%-d %B %Y at %H:%M UTC") if moment else "an unknown date"


def trial_reminder(org: Organisation, days_left: int) -> OutgoingMail:
    """To the Owner, a few days before the trial ends: when, what happens, what to do."""
    in_days = "tomorrow" if days_left == 1 else f"in {days_left} days"
    where = org.instance_url or f"your Billy at {org.slug}"
    text = (
        f"Hello {org.owner_name},\n\n"
        f"The {TRIAL_DAYS}-day trial of Agent Billy for {org.name} ends {in_days}, "
        f"on {when_words(org.trial_ends_at)}.\n\n"
        f"To keep your team working, choose a plan before then: open {where} and go to Settings → Plan.\n\n"
        "Without a plan your Billy turns read-only when the trial ends. Nothing is deleted: choosing a plan "
        "later opens it again, and your Stripe account is not affected either way.\n\n"
        "Agent Billy\n"
    )
    return OutgoingMail(to=org.owner_email, subject=f"Your Agent Billy trial ends {in_days}", text=text)


def account_link(org: Organisation, url: str, expires_at: datetime) -> OutgoingMail:
    """To the Owner who asked for it on the account page: the link, how long it lasts, and what to
    do if they did not ask (nothing: without the link nobody gets in)."""
    text = (
        f"Hello {org.owner_name},\n\n"
        f"Someone, probably you, asked to manage the Agent Billy subscription of {org.name} ({org.slug}).\n\n"
        f"Open this link to sign in to your account page:\n\n{url}\n\n"
        f"It works once, until {when_words(expires_at)}. There you can change plan, cancel or reactivate.\n\n"
        "If you did not ask for it, ignore this mail: nobody can sign in without the link, and nothing changes.\n\n"
        "Agent Billy\n"
    )
    return OutgoingMail(to=org.owner_email, subject=f"Sign in to manage {org.name}'s Agent Billy", text=text)
