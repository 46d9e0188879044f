"""The few HTTP calls the CLI makes to a Billy instance, with Billy's own words when it refuses.

Billy answers errors as `{"error": {"code", "message"}}`; the message is written for a person, so
it is what the CLI shows.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any
from urllib.parse import urlsplit

import httpx

from agent_billy import __version__
from agent_billy.config import Login

TIMEOUT = httpx.Timeout(20.0, connect=10.0)
USER_AGENT = f"agent-billy/{__version__}"


class BillyError(Exception):
    """Billy could not be asked, or said no; `str()` is fit to print."""


class Unreachable(BillyError):
    pass


class Refused(BillyError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_url(url: str) -> str:
    """The instance's base address, or ValueError in words. A bearer token must not cross the network
    in clear text, so plain http is for this machine only (AGENT_BILLY_ALLOW_HTTP=1 lifts that)."""
    cleaned = url.strip().rstrip("/")
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a web address: give Billy's address, e.g. https://billy.example.com")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: give only Billy's address, without ?… or #…")
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and os.environ.get("AGENT_BILLY_ALLOW_HTTP") != "1":
        raise ValueError(
            f"{url} is not https: agent-billy sends your token with every call, so it only uses plain "
            "http on this machine (localhost). Use Billy's https address."
        )
    return cleaned


def _refusal(response: httpx.Response) -> Refused:
    code, message = f"http_{response.status_code}", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code") or code)
        message = str(body["error"].get("message") or "")
    if not message:
        message = f"Billy answered {response.status_code} {response.reason_phrase}."
    return Refused(response.status_code, code, message)


def _request(method: str, url: str, *, token: str | None = None, json: Any = None) -> httpx.Response:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            response = client.request(method, url, headers=headers, json=json)
    except httpx.HTTPError as exc:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        raise Unreachable(f"Billy at {origin} is not reachable ({exc.__class__.__name__}: {exc}).") from exc
    if response.status_code >= 300:
        raise _refusal(response)
    return response


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise BillyError(f"Billy answered something that is not JSON ({response.status_code}).") from exc
    if not isinstance(body, dict):
        raise BillyError("Billy answered JSON of an unexpected shape.")
    return body


def exchange_code(base_url: str, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
    """The one-time code and the PKCE verifier → the new token and who it acts for."""
    response = _request(
        "POST",
        f"{base_url}/api/agent/token",
        json={"code": code, "code_verifier": verifier, "redirect_uri": redirect_uri},
    )
    body = _json_object(response)
    if not isinstance(body.get("token"), str) or not body["token"]:
        raise BillyError("Billy's answer carried no token.")
    return body


def whoami(login: Login) -> dict[str, Any]:
    """Whom the stored token acts for, as Billy sees it now (401 once revoked or expired)."""
    return _json_object(_request("GET", f"{login.url}/api/v1/me", token=login.token))


def revoke(login: Login) -> None:
    """Revoke the stored token at Billy (the one revocation a token may make: its own)."""
    _request("DELETE", f"{login.url}/api/v1/me/token", token=login.token)
