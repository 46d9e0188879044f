"""`agent-billy login`: the member approves in the browser; the token comes back over a loopback redirect.

This is OAuth 2.0 for native apps (RFC 8252) with PKCE (RFC 7636), against Billy's own pages:

1. Listen on 127.0.0.1 on a free port; make a random `state` and a PKCE verifier with its S256
   challenge; open `{url}/connect-agent?client_name&redirect_uri&state&code_challenge&…`.
2. The signed-in member picks a scope and approves; the browser comes back to
   `http://127.0.0.1:{port}/callback?code=…&state=…` (or `error=access_denied`).
3. A callback whose `state` is not ours is refused (another page cannot inject its own code), and
   the listener keeps waiting for the real one. The code is useless without the verifier, which
   never left this process: it goes to `/api/agent/token` to get the token.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import secrets
import sys
import threading
import time
import webbrowser
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

CALLBACK_PATH = "/callback"


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9_-]: within RFC 7636's 43-128
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


@dataclass(frozen=True)
class Callback:
    """What the browser brought back: a code, or the member's refusal."""

    code: str | None
    error: str | None


class LoginFailed(Exception):
    """Login did not complete; the message says why and what to do."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _page(title: str, text: str) -> bytes:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Agent Billy</title>"
        "<body style='font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;line-height:1.5'>"
        f"<h1 style='font-size:1.4rem'>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    ).encode()


class _Listener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: str) -> None:
        super().__init__(("127.0.0.1", 0), _CallbackHandler)
        self.expected_state = state
        self.result: Callback | None = None
        self.arrived = threading.Event()
        self.refused = 0


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _Listener
    timeout = 15  # a browser's idle preconnect must not hold a thread forever

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH:
            self._answer(404, "Not here", "This address only receives agent-billy's sign-in.")
            return
        query = parse_qs(parts.query)

        def one(name: str) -> str:
            values = query.get(name, [])
            return values[0] if len(values) == 1 else ""

        state = one("state")
        if not state or not hmac.compare_digest(state.encode(), self.server.expected_state.encode()):
            self.server.refused += 1
            _say("agent-billy: refused a sign-in callback that this login did not start.")
            self._answer(
                400,
                "This sign-in was not started here",
                "Its state does not match the `agent-billy login` waiting on this computer, so it was "
                "ignored. Run `npx agent-billy login` and approve from the page it opens.",
            )
            return
        if self.server.result is not None:
            self._answer(409, "Already done", "This sign-in has already been answered. You can close this tab.")
            return
        if one("error"):
            self.server.result = Callback(None, one("error"))
            self._answer(200, "Not connected", "You declined the connection. You can close this tab.")
        elif one("code"):
            self.server.result = Callback(one("code"), None)
            self._answer(200, "Agent Billy is connecting", "You can close this tab and go back to the terminal.")
        else:
            self._answer(400, "Incomplete", "This callback carries no code. Run `npx agent-billy login` again.")
            return
        self.server.arrived.set()

    def _answer(self, status: int, title: str, text: str) -> None:
        body = _page(title, text)
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request line carries the one-time code."""


def authorize_url(base_url: str, client_name: str, redirect_uri: str, state: str, pkce: Pkce) -> str:
    query = urlencode(
        {
            "client_name": client_name,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{base_url}/connect-agent?{query}"


@dataclass(frozen=True)
class Approval:
    code: str
    verifier: str
    redirect_uri: str


def wait_for_approval(base_url: str, client_name: str, *, open_browser: bool, timeout: float) -> Approval:
    """Run steps 1-2: listen, send the member to the approval page, and wait for the callback."""
    state = secrets.token_urlsafe(32)
    pkce = Pkce.new()
    listener = _Listener(state)
    redirect_uri = f"http://127.0.0.1:{listener.server_address[1]}{CALLBACK_PATH}"
    url = authorize_url(base_url, client_name, redirect_uri, state, pkce)
    thread = threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    try:
        if open_browser:
            _say("Approve this connection in your browser, signed in to Billy. If no browser opens, visit:")
        else:
            _say("Open this address in a browser signed in to Billy, and approve the connection:")
        _say(f"\n  {url}\n")
        if open_browser:
            with contextlib.suppress(webbrowser.Error):  # the printed address is the fallback
                webbrowser.open(url)
        deadline = time.monotonic() + timeout
        while not listener.arrived.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                minutes = timeout / 60
                waited = f"{minutes:g} minute{'s' if minutes != 1 else ''}" if timeout >= 60 else f"{timeout:g} s"
                raise LoginFailed(
                    f"No approval arrived within {waited}. Run `npx agent-billy login` again and approve "
                    "the connection in the page it opens."
                )
        result = listener.result
    finally:
        listener.shutdown()
        listener.server_close()
    assert result is not None
    if result.error:
        reason = "you declined the connection" if result.error == "access_denied" else f"Billy said {result.error}"
        raise LoginFailed(f"Not logged in: {reason}.")
    assert result.code is not None
    return Approval(result.code, pkce.verifier, redirect_uri)
