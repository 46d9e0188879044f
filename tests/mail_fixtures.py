"""`smtp_catcher`: a real SMTP server per test, with Billy's settings pointed at it.

Register it once in `tests/conftest.py`:

    from tests.mail_fixtures import smtp_catcher  # noqa: F401

then ask for it in any test that makes Billy send mail:

    def test_invite_link_arrives(smtp_catcher, owner):
        invite(...)                                   # sends through get_mailer()
        (mail,) = smtp_catcher.messages()             # newest first: to, subject, text, html, links
        assert mail.to == "new@example.com"
        link = smtp_catcher.links(to="new@example.com")[0]

The catcher (devtools.mailcatcher, on free ports) stores a message before it answers
the SMTP client, so a mail is there as soon as `send` returns: no waiting needed.
`smtp_catcher.url` is its web page, `clear()` forgets what it caught.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.mailcatcher import CatcherHandle, run_in_thread
from services.config import get_settings
from services.mailer import get_mailer


def _clear_caches() -> None:
    get_settings.cache_clear()
    get_mailer.cache_clear()


@pytest.fixture
def smtp_catcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[CatcherHandle]:
    """A mail catcher on free ports; `BILLY_SMTP_*` point at it (plain SMTP, no login)."""
    with run_in_thread() as catcher:
        monkeypatch.setenv("BILLY_SMTP_HOST", catcher.host)
        monkeypatch.setenv("BILLY_SMTP_PORT", str(catcher.smtp_port))
        monkeypatch.setenv("BILLY_SMTP_TLS", "none")
        monkeypatch.delenv("BILLY_SMTP_USER", raising=False)
        monkeypatch.delenv("BILLY_SMTP_PASSWORD", raising=False)
        _clear_caches()
        try:
            yield catcher
        finally:
            _clear_caches()
