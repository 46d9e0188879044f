"""A development mail catcher, so invite and reset links can be clicked without a mail server.

    python -m devtools.mailcatcher --smtp-port 1025 --http-port 8025 [--host 127.0.0.1] [--data-dir data/mail]

An aiosmtpd SMTP server accepts every message and keeps the newest ones (as .eml
files in `--data-dir` when given, which survive a restart; else in memory). A small
web page lists them (`/`), shows one with its links clickable (`/message/<id>`), and
`/api/messages` answers JSON for scripts. Tests start it with `run_in_thread`.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import logging
import re
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("devtools.mailcatcher")

READY_PREFIX = "mail catcher ready: "
DEFAULT_LIMIT = 500

_ID = re.compile(r"^(\d{8}T\d{12}Z)-[0-9a-f]{6}$")  # received time, then a random tail
_URL = re.compile(r"https?://[^\s<>\"'`]+")
_URL_TAIL = ".,;:!?)]}"  # punctuation after a link in a sentence, not part of it


def _url_spans(text: str) -> Iterator[tuple[int, str]]:
    """(start, URL) of every http(s) URL in `text`, without the sentence's punctuation after it."""
    for match in _URL.finditer(text):
        yield match.start(), match.group(0).rstrip(_URL_TAIL)


def find_links(text: str) -> list[str]:
    return [url for _, url in _url_spans(text)]


def linkify(text: str) -> str:
    """`text` as HTML: everything escaped, and only http(s) URLs turned into links."""
    parts: list[str] = []
    done = 0
    for start, url in _url_spans(text):
        parts.append(escape(text[done:start]))
        parts.append(f'<a href="{escape(url)}" rel="noreferrer">{escape(url)}</a>')
        done = start + len(url)
    parts.append(escape(text[done:]))
    return "".join(parts)


@dataclass(frozen=True)
class CaughtMail:
    """One caught message, parsed: what a test or a developer wants to look at."""

    id: str
    received_at: datetime
    sender: str
    to: str
    subject: str
    text: str
    html: str | None

    @property
    def links(self) -> list[str]:
        return find_links(self.text)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "date": self.received_at.isoformat(),
            "from": self.sender,
            "to": self.to,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
        }


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    return None if part is None else part.get_content().replace("\r\n", "\n")


def _header(message: EmailMessage, *names: str) -> str:
    """The first present header, unfolded (Python folds a long subject onto its second line)."""
    return next((str(message[name]).strip() for name in names if message[name] is not None), "")


def parse_mail(mail_id: str, raw: bytes) -> CaughtMail:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)  # what policy.default builds
    stamp = _ID.match(mail_id)
    assert stamp is not None  # the store only holds ids it made
    return CaughtMail(
        id=mail_id,
        received_at=datetime.strptime(stamp.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC),
        sender=_header(message, "From"),
        to=_header(message, "To", "X-RcptTo"),
        subject=_header(message, "Subject"),
        text=_body(message, "plain") or "",
        html=_body(message, "html"),
    )


class MailStore:
    """Caught messages (raw bytes), newest last inside, capped at `limit`; mirrored to `folder`."""

    def __init__(self, folder: Path | None = None, limit: int = DEFAULT_LIMIT) -> None:
        self.folder, self.limit = folder, limit
        self._lock = threading.Lock()
        self._raw: dict[str, bytes] = {}  # insertion order: oldest first
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            for path in sorted(folder.glob("*.eml")):
                if _ID.match(path.stem):
                    self._raw[path.stem] = path.read_bytes()
            self._trim()

    def add(self, raw: bytes) -> str:
        mail_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"
        with self._lock:
            if self.folder is not None:
                (self.folder / f"{mail_id}.eml").write_bytes(raw)
            self._raw[mail_id] = raw
            self._trim()
        return mail_id

    def _trim(self) -> None:
        while len(self._raw) > self.limit:
            self._forget(next(iter(self._raw)))

    def _forget(self, mail_id: str) -> None:
        del self._raw[mail_id]
        if self.folder is not None:
            (self.folder / f"{mail_id}.eml").unlink(missing_ok=True)

    def messages(self) -> list[CaughtMail]:
        """Newest first."""
        with self._lock:
            items = list(self._raw.items())
        return [parse_mail(mail_id, raw) for mail_id, raw in reversed(items)]

    def get(self, mail_id: str) -> CaughtMail | None:
        with self._lock:
            raw = self._raw.get(mail_id)
        return None if raw is None else parse_mail(mail_id, raw)

    def clear(self) -> None:
        with self._lock:
            for mail_id in list(self._raw):
                self._forget(mail_id)


class _CatchAll:
    """aiosmtpd handler: accept every message, keeping its envelope recipients (Bcc) as a header."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        mail_id = self.store.add(f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n".encode() + raw)
        log.info("caught %s for %s", mail_id, ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


# --- web page ---------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:sans-serif;margin:2rem;max-width:60rem}td,th{padding:.3rem .8rem;text-align:left}"
    "tr:nth-child(even){background:#f4f4f4}pre{white-space:pre-wrap;background:#f8f8f8;padding:1rem}"
)


def _page(title: str, body: str, *, refresh: bool = False) -> web.Response:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    html = (
        f'<!doctype html><html><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    # No script may run on a page that shows whatever was mailed to it.
    headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
    return web.Response(text=html, content_type="text/html", headers=headers)


def _when(mail: CaughtMail) -> str:
    return f"{mail.received_at:%Y-%m-%d %H:%M:%S} UTC"


def build_app(store: MailStore) -> web.Application:
    async def index(request: web.Request) -> web.Response:
        rows = "".join(
            f'<tr><td>{_when(m)}</td><td>{escape(m.to)}</td><td><a href="/message/{m.id}">'
            f"{escape(m.subject) or '(no subject)'}</a></td></tr>"
            for m in store.messages()
        )
        table = (
            f"<table><tr><th>received</th><th>to</th><th>subject</th></tr>{rows}</table>"
            if rows
            else "<p>No mail yet. This page refreshes by itself.</p>"
        )
        return _page("Mail catcher", f"<h1>Caught mail</h1>{table}", refresh=True)

    async def message(request: web.Request) -> web.Response:
        mail = store.get(request.match_info["id"])
        if mail is None:
            raise web.HTTPNotFound(text="No such message (the catcher keeps the newest ones only).")
        fields = "".join(
            f"<tr><th>{name}</th><td>{escape(value)}</td></tr>"
            for name, value in (
                ("From", mail.sender),
                ("To", mail.to),
                ("Subject", mail.subject),
                ("Received", _when(mail)),
            )
        )
        body = f'<p><a href="/">← all mail</a></p><table>{fields}</table><pre>{linkify(mail.text)}</pre>'
        return _page(mail.subject or "(no subject)", body)

    async def api_messages(request: web.Request) -> web.Response:
        return web.json_response([m.as_json() for m in store.messages()])

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/message/{id}", message)
    app.router.add_get("/api/messages", api_messages)
    return app


# --- running it -------------------------------------------------------------------------------


async def serve(
    host: str,
    smtp_port: int,
    http_port: int,
    store: MailStore,
    stop: asyncio.Event,
    on_ready: Callable[[int, int], None],
) -> None:
    """Listen for SMTP and HTTP until `stop` is set; port 0 picks a free one (told to `on_ready`)."""
    loop = asyncio.get_running_loop()
    handler = _CatchAll(store)
    # A fixed hostname: aiosmtpd would otherwise ask DNS for this machine's name on every connection.
    smtp_server = await loop.create_server(
        lambda: SMTP(handler, hostname="mailcatcher", enable_SMTPUTF8=True, loop=loop), host, smtp_port
    )
    runner = web.AppRunner(build_app(store), access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, http_port).start()
        on_ready(smtp_server.sockets[0].getsockname()[1], runner.addresses[0][1])
        await stop.wait()
    finally:
        smtp_server.close()
        await runner.cleanup()


@dataclass
class CatcherHandle:
    """A catcher running in this process: where it listens, what it caught, how to stop it."""

    host: str
    smtp_port: int
    http_port: int
    store: MailStore = field(repr=False)
    _stop: Callable[[], None] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def messages(self) -> list[CaughtMail]:
        """Every caught message, newest first."""
        return self.store.messages()

    def links(self, to: str | None = None) -> list[str]:
        """The http(s) URLs in the text bodies (newest message first), of mail to `to` when given."""
        return [link for m in self.messages() if to is None or to in m.to for link in m.links]

    def clear(self) -> None:
        self.store.clear()

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> CatcherHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _CatcherThread(threading.Thread):
    """`serve` on its own event loop in a daemon thread."""

    def __init__(self, host: str, smtp_port: int, http_port: int, store: MailStore) -> None:
        super().__init__(name="mailcatcher", daemon=True)
        self.args = (host, smtp_port, http_port, store)
        self.ports: tuple[int, int] | None = None
        self.failure: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def _on_ready(self, smtp_port: int, http_port: int) -> None:
        self.ports = (smtp_port, http_port)
        self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        await serve(*self.args, self._stop_event, self._on_ready)

    def run(self) -> None:
        try:
            asyncio.run(self._main())  # also cancels SMTP sessions still open at the end
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self.failure = exc
        finally:
            self._ready.set()

    def start_and_wait(self) -> tuple[int, int]:
        self.start()
        self._ready.wait(10)
        if self.ports is None:
            raise RuntimeError("the mail catcher did not start") from self.failure
        return self.ports

    def stop(self) -> None:
        if self.is_alive() and self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
            self.join(10)


def run_in_thread(
    smtp_port: int = 0,
    http_port: int = 0,
    *,
    host: str = "127.0.0.1",
    data_dir: str | Path | None = None,
    limit: int = DEFAULT_LIMIT,
) -> CatcherHandle:
    """Start a catcher in a background thread of this process (port 0: a free one)."""
    store = MailStore(Path(data_dir) if data_dir else None, limit)
    thread = _CatcherThread(host, smtp_port, http_port, store)
    bound_smtp, bound_http = thread.start_and_wait()
    return CatcherHandle(host, bound_smtp, bound_http, store, thread.stop)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.mailcatcher",
        description="Development mail catcher: accepts all mail over SMTP and shows it on a web page.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=1025, help="0 picks a free port")
    parser.add_argument("--http-port", type=int, default=8025, help="0 picks a free port")
    parser.add_argument("--data-dir", type=Path, help="keep messages as .eml files in DIR (default: memory only)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="how many messages to keep")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    def ready(smtp_port: int, http_port: int) -> None:
        print(f"{READY_PREFIX}smtp {args.host}:{smtp_port}, web http://{args.host}:{http_port}", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await serve(args.host, args.smtp_port, args.http_port, MailStore(args.data_dir, args.limit), stop, ready)

    try:
        asyncio.run(run())
    except OSError as exc:  # typically a port is taken
        print(f"mail catcher: cannot listen on {args.host}: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
