"""Helpers shared by the HTTP routes: who is calling, where from, cookies and CSRF."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services import identity
from services.config import get_settings
from services.identity import IssuedTokens
from services.origins import posted_from
from services.permissions import Actor, Source

# Cookies a magic link opens (httpOnly, short-lived): the link's token never enters a page.
LINK_COOKIES = {"invite": "billy_invite_link", "reset": "billy_reset_link"}
REFRESH_COOKIE_PATH = "/api/auth"  # sent to the refresh and sign-out routes only


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")


def request_actor(request: Request) -> Actor:
    """The signed-in member behind the access cookie, or `NotAuthenticated`."""
    return identity.verify_access(
        request.cookies.get(identity.ACCESS_COOKIE), Source.DASHBOARD, client_address(request), user_agent(request)
    )


def same_origin(request: Request) -> bool:
    """CSRF defence for cookie-authenticated posts (OWASP "verify origin with standard headers").

    The browser sets Origin (or at least Referer) on every cross-site POST and a page on
    another site cannot forge it. Accepted: the public URL's origin (and its loopback
    aliases for a local instance). The cookies are SameSite as a second line."""
    return posted_from(
        request.headers.get("origin", ""), request.headers.get("referer", ""), get_settings().allowed_origins
    )


def redirect(path: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def _cookie(response: Response, name: str, value: str, max_age: int, *, path: str = "/", samesite: str = "lax") -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, secure=get_settings().cookie_secure, samesite=samesite
    )  # type: ignore[arg-type]


def rotate_tab_token(response: Response) -> None:
    """Make the browser forget the tab's Reflex token (kept in sessionStorage), so the next page
    opens a fresh tab state: a sign-in or sign-out never inherits the previous session's state.
    The server resets a tab bound to another session anyway (`billy_app.event_gate`)."""
    response.headers["Clear-Site-Data"] = '"storage"'


def set_auth_cookies(response: Response, tokens: IssuedTokens, *, new_sign_in: bool = True) -> None:
    """Access token for every request (Lax: a link from a mail still opens the dashboard);
    refresh token only for /api/auth (Strict: never sent from another site). A new sign-in
    also starts a new tab token; a refresh within the same sign-in does not."""
    if new_sign_in:
        rotate_tab_token(response)
    _cookie(response, identity.ACCESS_COOKIE, tokens.access, int(identity.access_ttl().total_seconds()))
    _cookie(
        response,
        identity.REFRESH_COOKIE,
        tokens.refresh,
        get_settings().session_days * 86400,
        path=REFRESH_COOKIE_PATH,
        samesite="strict",
    )


def clear_auth_cookies(response: Response) -> None:
    rotate_tab_token(response)
    response.delete_cookie(identity.ACCESS_COOKIE, path="/")
    response.delete_cookie(identity.REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)


def set_link_cookie(response: Response, purpose: str, signed: str, max_age: int) -> None:
    _cookie(response, LINK_COOKIES[purpose], signed, max_age)


def clear_link_cookie(response: Response, purpose: str) -> None:
    response.delete_cookie(LINK_COOKIES[purpose], path="/")
