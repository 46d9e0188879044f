"""The one way Billy sends email (invites, password resets): SMTP from the instance settings.

Sending is blocking (`smtplib`); call `send` from a worker thread in async code
(`await asyncio.to_thread(get_mailer().send, mail)`). Bodies are never logged:
they carry single-use links.

The SMTP password lives in the secret store (`smtp-password`), read at each login so a changed
password needs no restart. `BILLY_SMTP_PASSWORD` only seeds it: `seed_smtp_password` copies it into
an empty store (at app start, or at the first login) and says the variable can go.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import lru_cache

from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential

from services.config import Settings, SmtpTls, choices, get_settings
from services.errors import BillyError
from services.secrets import SecretStore, SecretStoreError, SecretStoreUnavailable, get_secret_store

log = logging.getLogger("billy.mail")

TLS_MODES = tuple(mode.value for mode in SmtpTls)
SMTP_PASSWORD_SECRET = "smtp-password"


def seed_smtp_password(settings: Settings, store: SecretStore) -> str:
    """The SMTP password from the store, after copying `BILLY_SMTP_PASSWORD` into it if it had none.

    The variable is a one-time seed: once the store holds a password, the store wins and the
    variable is ignored (a warning says so when they differ). Values are never logged."""
    stored = store.get(SMTP_PASSWORD_SECRET)
    if stored is None and settings.smtp_password:
        store.set(SMTP_PASSWORD_SECRET, settings.smtp_password)
        log.warning(
            "BILLY_SMTP_PASSWORD was copied into the secret store (secret %r): Billy reads the SMTP password "
            "from there now, so the environment variable can be removed.",
            SMTP_PASSWORD_SECRET,
        )
        return settings.smtp_password
    if stored is not None and settings.smtp_password and stored != settings.smtp_password:
        log.warning(
            "BILLY_SMTP_PASSWORD is set but ignored: the secret store's %r is the SMTP password. Change it "
            "there, and remove the environment variable.",
            SMTP_PASSWORD_SECRET,
        )
    return stored or ""


def seed_smtp_password_on_start() -> None:
    """At app start: move `BILLY_SMTP_PASSWORD` into the secret store now rather than at the first
    email, so the log says early that the variable can go. A store that does not answer yet is
    not fatal to the start: the first login seeds it instead."""
    settings = get_settings()
    if not settings.smtp_password:
        return
    try:
        seed_smtp_password(settings, get_secret_store())
    except SecretStoreError as exc:
        log.warning("the SMTP password was not copied into the secret store yet (%s)", type(exc).__name__)


@dataclass(frozen=True)
class OutgoingMail:
    """One email for one person: what the templates make and the mailer sends."""

    to: str
    subject: str
    text: str
    html: str | None = None


class MailDeliveryFailed(BillyError):
    """The email did not leave. `retryable` says whether trying again later may help."""

    code = "mail_delivery_failed"

    def __init__(self, to: str, reason: str, *, retryable: bool) -> None:
        if retryable:
            message = (
                f"Billy could not send the email to {to} right now: {reason}. Nothing was lost: try again in a minute."
            )
        else:
            message = (
                f"Billy could not send the email to {to}: {reason}. Nothing was lost: check the address, "
                "or ask whoever runs this Billy to check its mail settings (BILLY_SMTP_*)."
            )
        super().__init__(message)
        self.to = to
        self.retryable = retryable


class _NotOffered(Exception):
    """The server lacks something the settings ask for (STARTTLS, login): a setting to fix, not a blip."""


def _is_transient(exc: BaseException) -> bool:
    """Worth another try: the server was unreachable or answered 4xx ("try again later")."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPException | ssl.SSLError | ssl.CertificateError):
        return False  # e.g. a TLS mismatch or a missing server feature: waiting does not fix it
    return isinstance(exc, OSError)  # refused, reset, timed out, DNS hiccup


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(text.split())}".strip()


class SmtpMailer:
    """Sends `OutgoingMail` through the SMTP server in the settings, retrying transient failures."""

    def __init__(
        self,
        settings: Settings,
        *,
        secrets: SecretStore | None = None,
        attempts: int = 3,
        retry_wait: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        """`secrets`: where the SMTP password is (default: the instance's secret store)."""
        # Settings from the environment are checked on reading; this catches ones made in code.
        if settings.smtp_tls not in TLS_MODES:
            raise BillyError(
                f"BILLY_SMTP_TLS is {str(settings.smtp_tls)!r}: use {choices(SmtpTls)}.", code="mail_settings"
            )
        self.settings = settings
        self.timeout = timeout
        self._secrets = secrets
        self._retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=retry_wait, max=retry_wait * 4),
            retry=retry_if_exception(_is_transient),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )

    def build_message(self, mail: OutgoingMail) -> EmailMessage:
        """The MIME message: text part, plus an HTML alternative when there is one."""
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        # An explicit domain: make_msgid would otherwise ask DNS for this machine's name.
        domain = parseaddr(self.settings.mail_from)[1].rpartition("@")[2] or "billy.localhost"
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(mail.text)
        if mail.html is not None:
            message.add_alternative(mail.html, subtype="html")
        return message

    def send(self, mail: OutgoingMail) -> None:
        """Deliver `mail` or raise `MailDeliveryFailed` (after a few tries when the failure is transient)."""
        message = self.build_message(mail)
        password = self._password(mail.to) if self.settings.smtp_user else ""
        try:
            self._retrying(self._deliver, message, password)
        except (OSError, _NotOffered) as exc:  # smtplib's and ssl's errors are OSErrors
            raise self._failure(mail.to, exc, password) from None  # the chain could carry server chatter
        log.info("sent email to %s: %s", mail.to, mail.subject)

    def _password(self, to: str) -> str:
        """The SMTP password from the secret store (seeded from the settings once); a store that
        cannot answer is a delivery failure the caller already knows how to report."""
        try:
            return seed_smtp_password(self.settings, self._secrets or get_secret_store())
        except SecretStoreError as exc:
            log.warning("email to %s not sent: the SMTP password could not be read (%s)", to, type(exc).__name__)
            raise MailDeliveryFailed(
                to,
                "its SMTP password could not be read from its secret store",
                retryable=isinstance(exc, SecretStoreUnavailable),
            ) from None

    def _deliver(self, message: EmailMessage, password: str) -> None:
        s = self.settings
        smtp: smtplib.SMTP
        if s.smtp_tls == SmtpTls.SSL:
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout)
        try:
            if s.smtp_tls == SmtpTls.STARTTLS:
                try:
                    smtp.starttls(context=ssl.create_default_context())
                except smtplib.SMTPNotSupportedError:
                    raise _NotOffered("the mail server does not offer STARTTLS (is BILLY_SMTP_TLS right?)") from None
            if s.smtp_user:
                try:
                    smtp.login(s.smtp_user, password)
                except smtplib.SMTPNotSupportedError:
                    raise _NotOffered(
                        "the mail server does not offer login on this connection (is BILLY_SMTP_TLS right?)"
                    ) from None
            smtp.send_message(message)
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()  # the mail is accepted: a clumsy goodbye must not send it twice
        finally:
            smtp.close()

    def _failure(self, to: str, exc: OSError | _NotOffered, password: str = "") -> MailDeliveryFailed:
        """Turn what smtplib raised into words a person can act on, with no secret in them."""
        where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
        if isinstance(exc, _NotOffered):
            reason = str(exc)
        elif isinstance(exc, smtplib.SMTPAuthenticationError):
            reason = "the mail server did not accept Billy's SMTP user name and password"
        elif isinstance(exc, smtplib.SMTPRecipientsRefused):
            reason = "the mail server refused the address: " + "; ".join(
                _reply(code, text) for code, text in exc.recipients.values()
            )
        elif isinstance(exc, smtplib.SMTPResponseException):
            reason = f"the mail server answered {_reply(exc.smtp_code, exc.smtp_error)}"
        elif isinstance(exc, ssl.SSLError | ssl.CertificateError):
            reason = (
                f"the secure connection to the mail server at {where} failed (check BILLY_SMTP_TLS and BILLY_SMTP_PORT)"
            )
        elif isinstance(exc, ConnectionRefusedError):
            reason = f"no mail server answers at {where}"
        elif isinstance(exc, TimeoutError):
            reason = f"the mail server at {where} did not answer in time"
        elif isinstance(exc, smtplib.SMTPServerDisconnected):
            reason = f"the mail server at {where} closed the connection"
        else:
            reason = f"sending through the mail server at {where} failed ({exc.strerror or exc or type(exc).__name__})"
        for secret in (password, self.settings.smtp_password):
            if secret:
                reason = reason.replace(secret, "[hidden]")
        log.warning("email to %s not sent: %s (%s)", to, reason, type(exc).__name__)
        return MailDeliveryFailed(to, reason, retryable=_is_transient(exc))


@lru_cache(maxsize=1)
def get_mailer() -> SmtpMailer:
    """The instance's mailer. Tests that change `BILLY_SMTP_*` call `get_mailer.cache_clear()`."""
    return SmtpMailer(get_settings())
