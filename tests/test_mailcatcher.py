"""The development mail catcher: what a developer sees after Billy sent an invite during `make run`."""

from __future__ import annotations

import re
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import httpx

from controlplane.local_http import local_http
from devtools.mailcatcher import CatcherHandle, run_in_thread

REPO_ROOT = Path(__file__).resolve().parent.parent


def _send(port: int, subject: str, text: str, *, to: str | None = "bob@example.com", bcc: str | None = None) -> None:
    message = EmailMessage()
    message["From"] = "billy@localhost"
    if to:
        message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        smtp.send_message(message, to_addrs=[a for a in (to, bcc) if a])


def _get(catcher: CatcherHandle, path: str) -> httpx.Response:
    return local_http().get(catcher.url + path, timeout=5)


def test_the_list_and_the_api_show_mail_newest_first() -> None:
    with run_in_thread() as catcher:
        _send(catcher.smtp_port, "First mail", "one")
        _send(catcher.smtp_port, "Second mail", "two", to="carol@example.com")

        api = _get(catcher, "/api/messages").json()
        page = _get(catcher, "/").text

    assert [(m["to"], m["subject"], m["text"]) for m in api] == [
        ("carol@example.com", "Second mail", "two\n"),
        ("bob@example.com", "First mail", "one\n"),
    ]
    assert all(m["id"] and m["date"].endswith("+00:00") for m in api)
    assert page.index("Second mail") < page.index("First mail")
    assert f'href="/message/{api[0]["id"]}"' in page
    assert "carol@example.com" in page


def test_a_message_page_makes_links_clickable_and_escapes_the_rest() -> None:
    hostile_subject = "<img src=x onerror=alert(1)>"
    body = (
        "Hi <b>Bob</b>, accept the invitation: http://localhost:3000/invite/abc?x=1&y=2.\n"
        "Not a link: javascript:alert(1) <script>alert(2)</script>\n"
    )
    with run_in_thread() as catcher:
        _send(catcher.smtp_port, hostile_subject, body)
        (mail,) = catcher.messages()
        page = _get(catcher, f"/message/{mail.id}")
        missing = _get(catcher, "/message/20260101T000000000000Z-abcdef")

    assert page.status_code == 200
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none': no script runs
    html = page.text
    assert '<a href="http://localhost:3000/invite/abc?x=1&amp;y=2" rel="noreferrer">' in html
    assert html.count("<a href=") == 2  # the link above, and "all mail"
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "Hi &lt;b&gt;Bob&lt;/b&gt;, accept" in html
    assert "<img" not in html and "<script" not in html and "<b>" not in html
    assert missing.status_code == 404
    assert mail.links == ["http://localhost:3000/invite/abc?x=1&y=2"]


def test_mail_without_a_to_header_is_listed_under_its_envelope_recipient() -> None:
    with run_in_thread() as catcher:
        _send(catcher.smtp_port, "Quiet", "psst", to=None, bcc="hidden@example.com")
        (mail,) = catcher.messages()
    assert mail.to == "hidden@example.com"


def test_links_can_be_picked_per_recipient_and_cleared() -> None:
    with run_in_thread() as catcher:
        _send(catcher.smtp_port, "Invite", "Join: https://billy.example/invite/1", to="bob@example.com")
        _send(catcher.smtp_port, "Invite", "Join: https://billy.example/invite/2", to="carol@example.com")
        assert catcher.links() == ["https://billy.example/invite/2", "https://billy.example/invite/1"]
        assert catcher.links(to="bob@example.com") == ["https://billy.example/invite/1"]
        catcher.clear()
        assert catcher.messages() == []
        assert _get(catcher, "/api/messages").json() == []


def test_a_data_dir_keeps_mail_across_restarts(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    with run_in_thread(data_dir=folder) as catcher:
        _send(catcher.smtp_port, "Kept", "Reset: http://localhost:3000/reset/abc")
        (before,) = catcher.messages()

    (eml,) = folder.glob("*.eml")
    assert eml.stem == before.id
    assert b"Subject: Kept" in eml.read_bytes()

    with run_in_thread(data_dir=folder) as catcher:
        assert catcher.messages() == [before]
        assert [m["subject"] for m in _get(catcher, "/api/messages").json()] == ["Kept"]
        catcher.clear()
    assert list(folder.glob("*.eml")) == []


def test_only_the_newest_messages_are_kept(tmp_path: Path) -> None:
    with run_in_thread(data_dir=tmp_path, limit=2) as catcher:
        for n in range(3):
            _send(catcher.smtp_port, f"Mail {n}", "text")
        assert [m.subject for m in catcher.messages()] == ["Mail 2", "Mail 1"]
    assert len(list(tmp_path.glob("*.eml"))) == 2


def test_the_command_prints_where_it_listens_and_catches_mail() -> None:
    command = [sys.executable, "-m", "devtools.mailcatcher", "--smtp-port", "0", "--http-port", "0"]
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            ready = process.stdout.readline().strip()
            match = re.fullmatch(r"mail catcher ready: smtp 127\.0\.0\.1:(\d+), web (http://127\.0\.0\.1:\d+)", ready)
            assert match, ready
            _send(int(match.group(1)), "Hello from the command line", "hi")
            api = local_http().get(f"{match.group(2)}/api/messages", timeout=5).json()
        finally:
            process.terminate()
        assert process.wait(10) == 0  # a clean stop on SIGTERM
    assert [m["subject"] for m in api] == ["Hello from the command line"]
