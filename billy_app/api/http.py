"""Helpers shared by the HTTP routes: who is calling, where from, and CSRF protection."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services import identity
from services.config import get_settings
from services.errors import NotAuthenticated
from services.permissions import Actor, Source


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def session_actor(request: Request) -> Actor:
    """The signed-in member behind the session cookie, or `NotAuthenticated`."""
    return identity.resolve_session(
        request.cookies.get(identity.SESSION_COOKIE),
        Source.DASHBOARD,
        client_address(request),
        request.headers.get("user-agent", ""),
    )


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def same_origin(request: Request) -> bool:
    """CSRF defence for cookie-authenticated form posts (OWASP "verify origin with standard headers").

    The browser sets Origin (or at least Referer) on every cross-site POST and a page on
    another site cannot forge it. Accepted: the public URL's origin (and its loopback
    aliases for a local instance)."""
    sent = request.headers.get("origin") or _origin_of(request.headers.get("referer", ""))
    if not sent or sent == "null":
        return False
    return sent in get_settings().allowed_origins


def redirect(path: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def set_session_cookie(response: Response, token: str) -> None:
    settings = get_settings()
    response.set_cookie(
        identity.SESSION_COOKIE,
        token,
        max_age=settings.session_days * 86400,
        path="/",
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(identity.SESSION_COOKIE, path="/")


__all__ = [
    "NotAuthenticated",
    "clear_session_cookie",
    "client_address",
    "redirect",
    "same_origin",
    "session_actor",
    "set_session_cookie",
]
