"""HTTP routes mounted beside Reflex: everything that sets a cookie or carries a secret.

Reflex events travel over the websocket and cannot set cookies, and anything sent as
an event passes through Reflex's state machinery. So sign-in, sign-up, sign-out and
the Stripe key are plain form posts handled here; each answers with a redirect to the
next page and, where there is something to say, a signed one-shot message (flash).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from billy_app.api import flash
from billy_app.api.http import (
    clear_session_cookie,
    client_address,
    redirect,
    same_origin,
    session_actor,
    set_session_cookie,
)
from services import identity, organization, stripe_keys, sync
from services.db import get_engine
from services.errors import BillyError, NotAuthenticated
from services.secrets import get_secret_store
from services.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def form_post(handler: Handler) -> Handler:
    """Refuse cross-site posts before the handler sees the form (CSRF)."""

    async def guarded(request: Request) -> Response:
        if not same_origin(request):
            return PlainTextResponse(
                "This form was sent from another site, so Billy refused it. Reload the page and try again.",
                status_code=403,
            )
        return await handler(request)

    return guarded


def _local_path(value: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or urlsplit(value).netloc:
        return "/"
    return value


async def _form(request: Request) -> dict[str, str]:
    data = await request.form()
    return {k: v for k, v in data.items() if isinstance(v, str)}


@form_post
async def signup(request: Request) -> Response:
    form = await _form(request)
    try:
        owner = await asyncio.to_thread(
            organization.signup,
            form.get("org_name", ""),
            form.get("plan", ""),
            form.get("email", ""),
            form.get("password", ""),
            client_address=client_address(request),
            user_agent=request.headers.get("user-agent", ""),
        )
    except BillyError as exc:
        kept = {k: form.get(k, "") for k in ("org_name", "plan", "email")}
        return redirect("/signup", flash=flash.pack(exc.message, **kept))
    token = await asyncio.to_thread(
        identity.new_session, owner.id, client_address(request), request.headers.get("user-agent", "")
    )
    response = redirect("/onboarding")
    set_session_cookie(response, token)
    return response


@form_post
async def login(request: Request) -> Response:
    form = await _form(request)
    next_path = _local_path(form.get("next"))
    try:
        token = await asyncio.to_thread(
            identity.login,
            form.get("email", ""),
            form.get("password", ""),
            client_address(request),
            request.headers.get("user-agent", ""),
        )
    except BillyError as exc:
        # Keep where the person was going, so a mistyped password does not lose it.
        kept_next = next_path if next_path != "/" else ""
        return redirect("/login", flash=flash.pack(exc.message, email=form.get("email", "")), next=kept_next)
    response = redirect(next_path)
    set_session_cookie(response, token)
    return response


@form_post
async def logout(request: Request) -> Response:
    await asyncio.to_thread(identity.logout, request.cookies.get(identity.SESSION_COOKIE))
    response = redirect("/login", flash=flash.pack("You are signed out.", kind="info"))
    clear_session_cookie(response)
    return response


@form_post
async def connect_stripe_key(request: Request) -> Response:
    """The wizard's step 2. The key exists here as a local variable and in the secret store only."""
    try:
        actor = await asyncio.to_thread(session_actor, request)
    except NotAuthenticated:
        return redirect("/login", next="/onboarding")
    form = await _form(request)
    try:
        connected = await asyncio.to_thread(stripe_keys.connect_stripe_key, actor, form.get("key", ""))
    except stripe_keys.KeyMissingPermissions as exc:
        return redirect("/onboarding", flash=flash.pack(exc.message, code=exc.code, granted=exc.granted))
    except BillyError as exc:
        return redirect("/onboarding", flash=flash.pack(exc.message, code=exc.code))
    sync.background_sync.start()
    message = f"Stripe connected ({connected.mode} mode, key ending {connected.key_hint}). Your data is syncing."
    return redirect("/onboarding", flash=flash.pack(message, code="connected", kind="info"))


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


def _readiness() -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with get_engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"failed: {type(exc).__name__}"
    try:
        get_secret_store().get("readiness-probe")
        checks["secret_store"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["secret_store"] = f"failed: {type(exc).__name__}"
    if checks["database"] == "ok" and stripe_keys.connection() is not None:
        try:
            StripeGateway().list_page("customers", limit=1)
            checks["stripe"] = "ok"
        except BillyError as exc:
            checks["stripe"] = f"failed: {exc.code}"
    return checks


async def readyz(_: Request) -> Response:
    """Database, secret store and (once connected) Stripe reachable: for the container platform."""
    checks = await asyncio.to_thread(_readiness)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


def build_api() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/auth/signup", signup, methods=["POST"]),
            Route("/api/auth/login", login, methods=["POST"]),
            Route("/api/auth/logout", logout, methods=["POST"]),
            Route("/api/onboarding/stripe-key", connect_stripe_key, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )
