"""Billy's email: what arrives at a real SMTP server, and what a user reads when sending fails."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from devtools.mailcatcher import CatcherHandle
from services import mailer as mailer_module
from services import secrets
from services.config import Settings, get_settings, settings_from_env
from services.errors import BillyError, SettingsInvalid
from services.mail_templates import format_expiry, invite_mail, password_reset_mail
from services.mailer import (
    SMTP_PASSWORD_SECRET,
    MailDeliveryFailed,
    OutgoingMail,
    SmtpMailer,
    get_mailer,
    seed_smtp_password,
    seed_smtp_password_on_start,
)
from services.secrets import LocalEncryptedSecretStore, SecretStore

PASSWORD = "hunter2-smtp-secret"
LINK = "http://localhost:3000/invite/tok3n?next=/team&x=1"
EXPIRES = datetime(2026, 11, 28, 14, 5, tzinfo=UTC)


def _invite(**overrides: Any) -> OutgoingMail:
    facts: dict[str, Any] = {
        "to": "bob@example.com",
        "org_name": "Acme Ltd",
        "inviter_email": "ann@example.com",
        "role_label": "Support",
        "link": LINK,
        "expires_at": EXPIRES,
    }
    return invite_mail(**(facts | overrides))


@pytest.fixture(autouse=True)
def _own_secret_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SMTP password is read from the instance's secret store: each test gets its own, in tmp_path."""
    monkeypatch.setenv("BILLY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    secrets.get_secret_store.cache_clear()
    yield
    get_settings.cache_clear()
    secrets.get_secret_store.cache_clear()


def _settings(**values: Any) -> Settings:
    """The default settings (whatever the environment says) with `values` (field names) instead."""
    return settings_from_env({}).model_copy(update=values)


def _mailer(port: int, **settings: Any) -> SmtpMailer:
    """A mailer for `127.0.0.1:port` that retries without waiting (3 attempts)."""
    return SmtpMailer(_settings(smtp_host="127.0.0.1", smtp_port=port, **settings), retry_wait=0)


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _ScriptedServer:
    """aiosmtpd handler answering DATA with scripted replies (then 250); counts connections."""

    def __init__(self, *, data_replies: list[str] | None = None, rcpt_reply: str | None = None) -> None:
        self.data_replies = list(data_replies or [])
        self.rcpt_reply = rcpt_reply
        self.connections = 0
        self.delivered: list[bytes] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.delivered.append(envelope.original_content)
        return "250 OK"


@contextmanager
def _smtp_server(handler: object, **smtp_options: Any) -> Iterator[int]:
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), server_hostname="test", **smtp_options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


# --- what arrives -----------------------------------------------------------------------------


def test_an_invite_arrives_with_its_headers_text_html_and_link_intact(smtp_catcher: CatcherHandle) -> None:
    get_mailer().send(_invite(org_name="Acme <script>alert(1)</script>"))

    (mail,) = smtp_catcher.messages()
    assert mail.to == "bob@example.com"
    assert mail.sender == "Agent Billy <billy@localhost>"
    assert mail.subject == "ann@example.com invited you to Acme <script>alert(1)</script> on Agent Billy"
    assert "ann@example.com invited you to Acme <script>alert(1)</script> on Agent Billy as Support." in mail.text
    assert smtp_catcher.links() == [LINK]
    assert mail.html is not None
    assert f'href="{LINK.replace("&", "&amp;")}"' in mail.html
    assert "Acme &lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "<script>" not in mail.html


def test_the_message_is_a_proper_email() -> None:
    settings = _settings(mail_from="Billy at Acme <billing@acme.test>")
    message = SmtpMailer(settings).build_message(_invite())

    assert message["From"] == "Billy at Acme <billing@acme.test>"
    assert message["To"] == "bob@example.com"
    assert message["Date"].datetime.tzinfo is not None
    assert message["Message-ID"].endswith("@acme.test>")
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]

    text_only = SmtpMailer(settings).build_message(OutgoingMail(to="bob@example.com", subject="Hi", text="Hello"))
    assert text_only.get_content_type() == "text/plain"
    assert text_only.get_content().strip() == "Hello"


# --- refusing cleanly -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ("starttls", "the mail server does not offer STARTTLS (is BILLY_SMTP_TLS right?)"),
        ("ssl", "the secure connection to the mail server at 127.0.0.1:"),
    ],
)
def test_tls_settings_against_a_plain_server_fail_cleanly_and_send_nothing(
    smtp_catcher: CatcherHandle, tls: str, expected: str
) -> None:
    mailer = _mailer(smtp_catcher.smtp_port, smtp_tls=tls, smtp_user="billy", smtp_password=PASSWORD)

    with pytest.raises(MailDeliveryFailed) as failure:
        mailer.send(_invite())

    message = str(failure.value)
    assert message.startswith("Billy could not send the email to bob@example.com: ")
    assert expected in message
    assert PASSWORD not in message
    assert not failure.value.retryable
    assert smtp_catcher.messages() == []  # nothing went out unencrypted


def test_a_refused_login_names_the_setting_but_never_the_password() -> None:
    server = _ScriptedServer()
    refuse = lambda *args: AuthResult(success=False, handled=False)  # noqa: E731
    with (
        _smtp_server(server, authenticator=refuse, auth_require_tls=False) as port,
        pytest.raises(MailDeliveryFailed) as failure,
    ):
        _mailer(port, smtp_user="billy", smtp_password=PASSWORD).send(_invite())

    assert "the mail server did not accept Billy's SMTP user name and password" in str(failure.value)
    assert PASSWORD not in str(failure.value)
    assert server.connections == 1  # a wrong password does not heal by retrying


def test_a_server_reply_that_echoes_the_password_is_scrubbed() -> None:
    server = _ScriptedServer(data_replies=[f"554 policy violation for {PASSWORD}"])
    with _smtp_server(server) as port, pytest.raises(MailDeliveryFailed) as failure:
        _mailer(port, smtp_password=PASSWORD).send(_invite())

    assert "554 policy violation for [hidden]" in str(failure.value)
    assert PASSWORD not in str(failure.value)


def test_an_unknown_tls_mode_is_a_clear_settings_error() -> None:
    with pytest.raises(SettingsInvalid, match=r"^BILLY_SMTP_TLS is 'tls': use none, starttls or ssl\.$"):
        settings_from_env({"BILLY_SMTP_TLS": "tls"})
    # Settings made in code skip that check (model_copy does not validate): the mailer still refuses.
    with pytest.raises(BillyError, match="BILLY_SMTP_TLS is 'tls': use none, starttls or ssl"):
        SmtpMailer(_settings(smtp_tls="tls"))


# --- transient and permanent failures ---------------------------------------------------------


def test_a_server_that_is_down_fails_after_retries(caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="billy.mail"), pytest.raises(MailDeliveryFailed) as failure:
        _mailer(port).send(_invite())

    assert str(failure.value) == (
        f"Billy could not send the email to bob@example.com right now: no mail server answers at 127.0.0.1:{port}. "
        "Nothing was lost: try again in a minute."
    )
    assert failure.value.retryable
    assert sum("Retrying" in r.getMessage() for r in caplog.records) == 2  # 3 attempts in all


def test_a_server_that_hangs_up_is_retried() -> None:
    accepted: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up_on_everyone() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.close()

    threading.Thread(target=hang_up_on_everyone, daemon=True).start()
    try:
        with pytest.raises(MailDeliveryFailed, match=r"closed the connection\. Nothing was lost: try again"):
            _mailer(listener.getsockname()[1]).send(_invite())
    finally:
        listener.close()
    assert len(accepted) == 3


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ({"data_replies": ["550 5.7.1 Message rejected as spam"] * 3}, "answered 550 5.7.1 Message rejected as spam"),
        ({"rcpt_reply": "550 5.1.1 No such user here"}, "refused the address: 550 5.1.1 No such user here"),
    ],
    ids=["data", "recipient"],
)
def test_a_permanent_refusal_fails_at_once(script: dict[str, Any], expected: str) -> None:
    server = _ScriptedServer(**script)
    with _smtp_server(server) as port, pytest.raises(MailDeliveryFailed) as failure:
        _mailer(port).send(_invite())

    assert expected in str(failure.value)
    assert "check the address" in str(failure.value)
    assert not failure.value.retryable
    assert server.connections == 1


def test_a_temporary_refusal_is_retried_until_the_mail_is_accepted() -> None:
    server = _ScriptedServer(data_replies=["451 4.3.0 Try again later"])
    with _smtp_server(server) as port:
        _mailer(port).send(_invite())

    assert server.connections == 2
    assert len(server.delivered) == 1


def test_a_refusal_that_stays_temporary_fails_after_three_attempts() -> None:
    server = _ScriptedServer(data_replies=["451 4.3.0 Try again later"] * 5)
    with _smtp_server(server) as port, pytest.raises(MailDeliveryFailed) as failure:
        _mailer(port).send(_invite())

    assert "right now: the mail server answered 451 4.3.0 Try again later" in str(failure.value)
    assert failure.value.retryable
    assert server.connections == 3
    assert server.delivered == []


# --- templates --------------------------------------------------------------------------------


def test_expiry_reads_the_same_everywhere_in_utc() -> None:
    paris_evening = datetime(2026, 11, 28, 15, 5, tzinfo=timezone(timedelta(hours=1)))
    assert format_expiry(paris_evening) == "28 November 2026, 14:05 UTC"
    assert format_expiry(datetime(2027, 1, 3, 9, 0, tzinfo=UTC)) == "3 January 2027, 09:00 UTC"
    with pytest.raises(ValueError, match="naive"):
        format_expiry(datetime(2026, 11, 28, 14, 5))


def test_invite_says_who_what_role_and_until_when() -> None:
    mail = _invite()
    assert mail.to == "bob@example.com"
    assert mail.subject == "ann@example.com invited you to Acme Ltd on Agent Billy"
    assert "ann@example.com invited you to Acme Ltd on Agent Billy as Support." in mail.text
    assert f"\n{LINK}\n" in mail.text  # on a line of its own, so any mail client can open it
    assert "The link works once and expires on 28 November 2026, 14:05 UTC." in mail.text
    assert "If you did not expect this invitation, ignore this email" in mail.text
    assert mail.html is not None and "expires on 28 November 2026, 14:05 UTC" in mail.html


def test_invite_html_escapes_every_value() -> None:
    mail = _invite(
        org_name="<b>Acme</b>\nBcc: evil@example.com",
        inviter_email='"ann&co"@example.com',
        role_label="<i>Admin</i>",
        link='https://billy.example/invite/x?a=1&b="2"',
    )
    assert mail.subject == '"ann&co"@example.com invited you to <b>Acme</b> Bcc: evil@example.com on Agent Billy'
    assert mail.html is not None
    for raw in ("<b>", "<i>", '"ann&co"', 'b="2"'):
        assert raw not in mail.html
    assert "&lt;b&gt;Acme&lt;/b&gt;" in mail.html
    assert "&lt;i&gt;Admin&lt;/i&gt;" in mail.html
    assert "&quot;ann&amp;co&quot;@example.com" in mail.html
    assert 'href="https://billy.example/invite/x?a=1&amp;b=&quot;2&quot;"' in mail.html


def test_password_reset_mail_reassures_whoever_did_not_ask() -> None:
    link = "http://localhost:3000/reset/abc"
    mail = password_reset_mail(to="bob@example.com", link=link, expires_at=EXPIRES + timedelta(hours=1))
    assert mail.to == "bob@example.com"
    assert mail.subject == "Reset your Agent Billy password"
    assert f"\n{link}\n" in mail.text
    assert "expires on 28 November 2026, 15:05 UTC" in mail.text
    assert "If you did not ask, ignore this email: your password stays the same." in mail.text
    assert mail.html is not None and f'href="{link}"' in mail.html


# --- the SMTP password lives in the secret store ------------------------------------------------


class _Logins:
    """An aiosmtpd authenticator that accepts any login and remembers the passwords it was given."""

    def __init__(self) -> None:
        self.passwords: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        self.passwords.append(auth_data.password.decode())
        return AuthResult(success=True)


@pytest.fixture(params=["local", "azure"])
def password_store(request: pytest.FixtureRequest, tmp_path: Path) -> SecretStore:
    if request.param == "local":
        return LocalEncryptedSecretStore(tmp_path / "store", tmp_path / "store-key" / "master.key")
    make: Callable[..., SecretStore] = request.getfixturevalue("vault_store")
    return make(prefix="acme-")


def test_the_login_password_is_read_from_the_secret_store(password_store: SecretStore) -> None:
    password_store.set(SMTP_PASSWORD_SECRET, "from-the-store-pw")
    logins, server = _Logins(), _ScriptedServer()
    settings = _settings(smtp_host="127.0.0.1", smtp_user="billy", smtp_password="")

    with _smtp_server(server, authenticator=logins, auth_require_tls=False) as port:
        SmtpMailer(settings.model_copy(update={"smtp_port": port}), secrets=password_store).send(_invite())

    assert logins.passwords == ["from-the-store-pw"]
    assert len(server.delivered) == 1


def test_the_environment_password_seeds_an_empty_store_once_and_says_the_variable_can_go(
    password_store: SecretStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(smtp_password=PASSWORD)

    with caplog.at_level(logging.INFO):
        assert seed_smtp_password(settings, password_store) == PASSWORD
        assert seed_smtp_password(settings, password_store) == PASSWORD  # already there: no second copy

    assert password_store.get(SMTP_PASSWORD_SECRET) == PASSWORD
    copied = [r.getMessage() for r in caplog.records if "copied into the secret store" in r.getMessage()]
    assert len(copied) == 1 and "can be removed" in copied[0]
    assert PASSWORD not in caplog.text


def test_the_store_wins_over_a_changed_environment_variable(caplog: pytest.LogCaptureFixture) -> None:
    secrets.get_secret_store().set(SMTP_PASSWORD_SECRET, "rotated-in-the-store")
    logins = _Logins()
    with (
        caplog.at_level(logging.INFO),
        _smtp_server(_ScriptedServer(), authenticator=logins, auth_require_tls=False) as port,
    ):
        _mailer(port, smtp_user="billy", smtp_password="stale-in-the-environment").send(_invite())

    assert logins.passwords == ["rotated-in-the-store"]
    assert "BILLY_SMTP_PASSWORD is set but ignored" in caplog.text
    assert "rotated-in-the-store" not in caplog.text and "stale-in-the-environment" not in caplog.text


def test_without_a_seeded_store_the_first_login_seeds_it() -> None:
    logins = _Logins()
    with _smtp_server(_ScriptedServer(), authenticator=logins, auth_require_tls=False) as port:
        _mailer(port, smtp_user="billy", smtp_password=PASSWORD).send(_invite())

    assert logins.passwords == [PASSWORD]
    assert secrets.get_secret_store().get(SMTP_PASSWORD_SECRET) == PASSWORD


def test_the_app_start_seeds_the_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seed_smtp_password_on_start()  # no variable: nothing to seed
    assert secrets.get_secret_store().get(SMTP_PASSWORD_SECRET) is None

    monkeypatch.setenv("BILLY_SMTP_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    seed_smtp_password_on_start()

    assert secrets.get_secret_store().get(SMTP_PASSWORD_SECRET) == PASSWORD


def test_a_vault_outage_at_start_does_not_stop_the_app(
    fake_vault: Any, vault_store: Callable[..., SecretStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = vault_store()
    monkeypatch.setattr(mailer_module, "get_secret_store", lambda: store)
    monkeypatch.setenv("BILLY_SMTP_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    fake_vault.outage = True

    seed_smtp_password_on_start()  # logs, does not raise

    fake_vault.outage = False
    assert store.get(SMTP_PASSWORD_SECRET) is None  # the first login will seed it


def test_a_secret_store_outage_is_a_retryable_delivery_failure(
    fake_vault: Any, vault_store: Callable[..., SecretStore]
) -> None:
    store = vault_store()
    store.set(SMTP_PASSWORD_SECRET, PASSWORD)
    fake_vault.outage = True
    server = _ScriptedServer()

    with _smtp_server(server) as port, pytest.raises(MailDeliveryFailed) as failure:
        SmtpMailer(_settings(smtp_host="127.0.0.1", smtp_port=port, smtp_user="billy"), secrets=store).send(_invite())

    assert str(failure.value) == (
        "Billy could not send the email to bob@example.com right now: its SMTP password could not be read from "
        "its secret store. Nothing was lost: try again in a minute."
    )
    assert failure.value.retryable and server.connections == 0
