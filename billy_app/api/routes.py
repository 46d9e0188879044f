"""HTTP routes mounted beside Reflex: everything that sets a cookie or carries a secret.

Reflex events travel over the websocket and cannot set cookies, and anything sent as
an event passes through Reflex's state machinery. So sign-in, sign-up, sign-out and
the Stripe key are plain form posts handled here; each answers with a redirect to the
next page and, where there is something to say, a signed one-shot message (flash).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from billy_app.api import agent_login, flash
from billy_app.api.http import (
    LINK_COOKIES,
    clear_auth_cookies,
    clear_link_cookie,
    client_address,
    redirect,
    request_actor,
    same_origin,
    set_auth_cookies,
    set_link_cookie,
    user_agent,
)
from billy_app.api.v1 import RestMount, build_rest_api
from billy_app.blocking import in_thread, in_webhook_thread
from services import (
    exports,
    handover,
    health,
    identity,
    magic_links,
    organization,
    stripe_events,
    stripe_keys,
    sync,
    team,
)
from services.config import get_settings
from services.errors import BillyError, NotAuthenticated, PermissionDenied
from services.permissions import Actor

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


def member_form_post(sign_in_then: str) -> Callable[[Callable[[Request, Actor], Awaitable[Response]]], Handler]:
    """A form post by a signed-in member: CSRF-checked, then the Actor from the access cookie
    (or off to sign-in, coming back to `sign_in_then`)."""

    def wrap(handler: Callable[[Request, Actor], Awaitable[Response]]) -> Handler:
        @form_post
        async def with_member(request: Request) -> Response:
            try:
                actor = await in_thread(request_actor, request)
            except NotAuthenticated:
                return redirect("/login", next=sign_in_then)
            return await handler(request, actor)

        return with_member

    return wrap


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
        owner = await in_thread(
            organization.signup,
            form.get("org_name", ""),
            form.get("plan", ""),
            form.get("email", ""),
            form.get("password", ""),
            client_address=client_address(request),
            user_agent=request.headers.get("user-agent", ""),
            owner_name=form.get("name", ""),
        )
    except BillyError as exc:
        kept = {k: form.get(k, "") for k in ("org_name", "plan", "email", "name")}
        return redirect("/signup", flash=flash.pack(exc.message, **kept))
    tokens = await in_thread(identity.start_session, owner.id, client_address(request), user_agent(request))
    response = redirect("/onboarding")
    set_auth_cookies(response, tokens)
    return response


@form_post
async def login(request: Request) -> Response:
    form = await _form(request)
    next_path = _local_path(form.get("next"))
    try:
        tokens = await in_thread(
            identity.login,
            form.get("email", ""),
            form.get("password", ""),
            client_address(request),
            user_agent(request),
        )
    except BillyError as exc:
        # Keep where the person was going, so a mistyped password does not lose it.
        kept_next = next_path if next_path != "/" else ""
        return redirect("/login", flash=flash.pack(exc.message, email=form.get("email", "")), next=kept_next)
    response = redirect(next_path)
    set_auth_cookies(response, tokens)
    return response


@form_post
async def logout(request: Request) -> Response:
    await in_thread(
        identity.logout, request.cookies.get(identity.ACCESS_COOKIE), request.cookies.get(identity.REFRESH_COOKIE)
    )
    response = redirect("/login", flash=flash.pack("You are signed out.", kind="info"))
    clear_auth_cookies(response)
    return response


async def refresh(request: Request) -> Response:
    """Called by the dashboard's own script shortly before the hour ends: a new access token
    and a new refresh token, both as cookies; nothing in the body a script could keep."""
    if not same_origin(request):
        return JSONResponse({"ok": False, "error": "cross-site request refused"}, status_code=403)
    try:
        tokens = await in_thread(
            identity.refresh, request.cookies.get(identity.REFRESH_COOKIE), client_address(request), user_agent(request)
        )
    except BillyError as exc:
        response = JSONResponse({"ok": False, "error": exc.message}, status_code=401)
        clear_auth_cookies(response)
        return response
    response = JSONResponse({"ok": True, "expires_at": tokens.access_expires_at.isoformat()})
    set_auth_cookies(response, tokens, new_sign_in=False)
    return response


@member_form_post("/onboarding")
async def connect_stripe_key(request: Request, actor: Actor) -> Response:
    """The wizard's step 2. The key exists here as a local variable and in the secret store only."""
    form = await _form(request)
    return await _connect_stripe(functools.partial(stripe_keys.connect_stripe_key, actor, form.get("key", "")))


@member_form_post("/onboarding")
async def connect_demo_key(request: Request, actor: Actor) -> Response:
    """Sandbox mode, step 2's "Use the sandbox's demo key": the server picks the key, so it never
    reaches a browser, Reflex state or a form (issue 10, F2)."""
    return await _connect_stripe(functools.partial(stripe_keys.connect_demo_key, actor))


async def _connect_stripe(connect: Callable[[], stripe_keys.ConnectedKey]) -> Response:
    """Both ways to connect end alike: the refusal explained on the wizard, or the first sync."""
    try:
        connected = await in_thread(connect)
    except stripe_keys.KeyMissingPermissions as exc:
        return redirect("/onboarding", flash=flash.pack(exc.message, code=exc.code, granted=exc.granted))
    except BillyError as exc:
        return redirect("/onboarding", flash=flash.pack(exc.message, code=exc.code))
    sync.background_sync.start()
    message = f"Stripe connected ({connected.mode} mode, key ending {connected.key_hint}). Your data is syncing."
    return redirect("/onboarding", flash=flash.pack(message, code="connected", kind="info"))


STRIPE_SETTINGS = "/settings/stripe"


@member_form_post(STRIPE_SETTINGS)
async def save_stripe_key(request: Request, actor: Actor) -> Response:
    """Settings → Stripe connection: rotate the connected key, or connect one again after a
    disconnection. As in the wizard, the key exists here as a local variable and in the secret
    store only; the page learns the outcome from the signed flash (never the key)."""
    form = await _form(request)
    key = form.get("key", "")
    connected = await in_thread(stripe_keys.connection)
    change = stripe_keys.rotate_stripe_key if connected is not None else stripe_keys.connect_stripe_key
    try:
        done = await in_thread(change, actor, key)
    except stripe_keys.KeyMissingPermissions as exc:
        return redirect(STRIPE_SETTINGS, flash=flash.pack(exc.message, code=exc.code, granted=exc.granted))
    except BillyError as exc:
        return redirect(STRIPE_SETTINGS, flash=flash.pack(exc.message, code=exc.code))
    if connected is None:
        sync.background_sync.start()  # connected again: catch up on what changed meanwhile
        message = f"Stripe connected again ({done.mode} mode, key ending {done.key_hint}). Syncing has restarted."
        return redirect(STRIPE_SETTINGS, flash=flash.pack(message, code="connected", kind="info"))
    message = (
        f"Key rotated: Billy now uses the {done.mode} mode key ending {done.key_hint}. "
        "You can delete the old key in the Stripe Dashboard."
    )
    return redirect(STRIPE_SETTINGS, flash=flash.pack(message, code="rotated", kind="info"))


@member_form_post("/settings/sync")
async def save_webhook_secret(request: Request, actor: Actor) -> Response:
    """Settings → Stripe sync: the endpoint's signing secret goes to the secret store only."""
    form = await _form(request)
    try:
        await in_thread(stripe_events.set_webhook_secret, actor, form.get("secret", ""))
    except BillyError as exc:
        return redirect("/settings/sync", flash=flash.pack(exc.message, code=exc.code))
    message = "Webhook signing secret saved. Stripe's events now reach Billy as they happen."
    return redirect("/settings/sync", flash=flash.pack(message, code="saved", kind="info"))


async def _body_within(request: Request, limit: int) -> bytes | None:
    """The body, read chunk by chunk, or None as soon as it passes `limit` bytes (the rest is
    never read). A `Content-Length` over the limit is refused before reading; a smaller one is
    not believed: the bytes that actually arrive are what is counted."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def stripe_webhook(request: Request) -> Response:
    """Stripe's deliveries: no cookies, no CSRF check; the signature is the credential.
    A refused delivery gets 400 and writes nothing (Stripe retries it for three days). One
    larger than `BILLY_WEBHOOK_MAX_BYTES` gets 413 before it is parsed or its signature checked."""
    limit = get_settings().webhook_max_bytes
    payload = await _body_within(request, limit)
    if payload is None:
        log.warning("Refused a webhook delivery over %d bytes, unread", limit)
        return PlainTextResponse(
            f"A Stripe delivery is at most {limit} bytes here and this one is larger, so it was refused unread.",
            status_code=413,
        )
    try:
        result = await in_webhook_thread(
            stripe_events.receive_webhook, payload, request.headers.get("stripe-signature")
        )
    except stripe_events.WebhookRejected as exc:
        log.warning("Refused a webhook delivery: %s", exc.message)
        return PlainTextResponse(exc.message, status_code=400)
    return PlainTextResponse(result.outcome)


async def open_link(request: Request) -> Response:
    """GET of an emailed link: check it, keep it in an httpOnly cookie, open its page.

    Opening does not spend the link (mail scanners fetch links too); the form on the page
    spends it. The token never appears in the page or in Reflex state."""
    try:
        purpose = magic_links.Purpose(request.path_params["purpose"])
    except ValueError:
        return PlainTextResponse("No such link.", status_code=404)
    if purpose not in LINK_COOKIES:  # a hand-over is spent at its own route, never parked in a cookie
        return PlainTextResponse("No such link.", status_code=404)
    signed = request.query_params.get("token", "")
    page = "/invite" if purpose is magic_links.Purpose.INVITE else "/reset"
    try:
        seconds_left = await in_thread(magic_links.seconds_left, purpose, signed)
    except BillyError as exc:
        response = redirect(page, flash=flash.pack(exc.message))
        clear_link_cookie(response, purpose)
        return response
    response = redirect(page)
    set_link_cookie(response, purpose, signed, max(60, int(seconds_left)))
    return response


async def handover_sign_in(request: Request) -> Response:
    """GET of the address the control plane sends a new Owner to: spend the 60-second hand-over
    token (`services.handover`) and arrive signed in, as after a password sign-in.

    Spent on the GET, unlike an emailed link: it is never mailed (no scanner opens it first), and
    a token left in the browser's history must already be dead. The page it answers is kept out
    of caches, and the token out of the Referer of anything the next page loads."""
    signed = request.query_params.get("token", "")
    try:
        tokens = await in_thread(handover.redeem_handover, signed, client_address(request), user_agent(request))
    except BillyError as exc:
        response = redirect("/login", flash=flash.pack(exc.message))
    else:
        done = await in_thread(organization.onboarding_done)
        response = redirect("/dashboard" if done else "/onboarding")
        set_auth_cookies(response, tokens)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@form_post
async def accept_invite(request: Request) -> Response:
    form = await _form(request)
    signed = request.cookies.get(LINK_COOKIES["invite"], "")
    try:
        member_id = await in_thread(
            team.accept_invite,
            signed,
            form.get("name", ""),
            form.get("password", ""),
            client_address=client_address(request),
            user_agent=user_agent(request),
        )
    except magic_links.LinkInvalid as exc:
        response = redirect("/invite", flash=flash.pack(exc.message))
        clear_link_cookie(response, "invite")
        return response
    except BillyError as exc:
        return redirect("/invite", flash=flash.pack(exc.message, name=form.get("name", "")))
    tokens = await in_thread(identity.start_session, member_id, client_address(request), user_agent(request))
    response = redirect("/dashboard")
    clear_link_cookie(response, "invite")
    set_auth_cookies(response, tokens)
    return response


FORGOT_ANSWER = (
    "If that address belongs to a Billy account, a link to choose a new password is on its way. "
    "It works once, for one hour."
)


@form_post
async def forgot_password(request: Request) -> Response:
    form = await _form(request)
    try:
        await in_thread(team.request_password_reset, form.get("email", ""), client_address(request))
    except BillyError as exc:  # mail trouble: say so, but never whether the account exists
        log.warning("Password reset mail not sent: %s", exc)
    return redirect("/forgot", flash=flash.pack(FORGOT_ANSWER, kind="info"))


@form_post
async def reset_password(request: Request) -> Response:
    form = await _form(request)
    signed = request.cookies.get(LINK_COOKIES["reset"], "")
    if form.get("password", "") != form.get("password_again", ""):
        return redirect("/reset", flash=flash.pack("The two passwords are not the same."))
    try:
        await in_thread(
            team.reset_password,
            signed,
            form.get("password", ""),
            client_address=client_address(request),
            user_agent=user_agent(request),
        )
    except magic_links.LinkInvalid as exc:
        response = redirect("/reset", flash=flash.pack(exc.message))
        clear_link_cookie(response, "reset")
        return response
    except BillyError as exc:
        return redirect("/reset", flash=flash.pack(exc.message))
    response = redirect("/login", flash=flash.pack("Your password is changed. Sign in with it now.", kind="info"))
    clear_link_cookie(response, "reset")
    clear_auth_cookies(response)
    return response


@member_form_post("/settings/team")
async def transfer_ownership(request: Request, actor: Actor) -> Response:
    """The Owner re-enters their password: a form post, so it never passes through Reflex."""
    form = await _form(request)
    try:
        member_id = int(form.get("member_id", ""))
        await in_thread(team.transfer_ownership, actor, member_id, form.get("password", ""))
    except ValueError:
        return redirect("/settings/team", flash=flash.pack("Choose the member who becomes Owner."))
    except BillyError as exc:
        return redirect("/settings/team", flash=flash.pack(exc.message))
    response = redirect(
        "/login", flash=flash.pack("Ownership moved. Sign in again to continue as Billing Manager.", kind="info")
    )
    clear_auth_cookies(response)
    return response


NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _start_export(actor: Actor, kind: str, ticket: str) -> tuple[str, Generator[str, None, None]]:
    """Spend the ticket, then start the stream: its first chunk (the header row) is read here, so
    a refusal or a bad filter is answered with a status code before any byte of the file is sent."""
    order = exports.redeem(actor, kind, ticket)
    chunks = exports.stream(actor, order.kind, order.filters, order.sort)
    return next(chunks), chunks


async def _rest_of(first: str, chunks: Generator[str, None, None]) -> AsyncIterator[str]:
    """The stream's chunks, each read in a worker thread (the walk queries the store). However the
    response ends, the stream is closed, so its audit row is written: `ok` at the end, `failed`
    ("interrupted") when the client went away; shielded, since a disconnect cancels this task."""
    try:
        yield first
        while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(chunks.close)


async def export_csv(request: Request) -> Response:
    """GET /api/exports/<kind>.csv?ticket=…: a list or report as CSV, streamed. The ticket (made a
    moment ago by the page, single use) names the export and its filters; the access cookie
    names the member, whose role and plan are read again now. Refusals are audited (services)."""
    kind = request.path_params["kind"]
    if kind not in exports.KINDS:
        return PlainTextResponse("There is no such export.", status_code=404, headers=NO_STORE)
    try:
        actor = await in_thread(request_actor, request)
    except NotAuthenticated as exc:
        return PlainTextResponse(exc.message, status_code=401, headers=NO_STORE)
    try:
        first, chunks = await in_thread(_start_export, actor, kind, request.query_params.get("ticket", ""))
    except NotAuthenticated as exc:
        return PlainTextResponse(exc.message, status_code=401, headers=NO_STORE)
    except PermissionDenied as exc:
        return PlainTextResponse(exc.message, status_code=403, headers=NO_STORE)
    except BillyError as exc:
        return PlainTextResponse(exc.message, status_code=400, headers=NO_STORE)
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{exports.filename(kind)}"'}
    return StreamingResponse(_rest_of(first, chunks), media_type="text/csv; charset=utf-8", headers=headers)


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """Database, secret store and (once connected) Stripe reachable: for the container platform.

    No sign-in, so limited per client address before any work (a 429 costs a dictionary
    look-up); the Stripe answer itself is cached in `services.health`."""
    retry_after = health.readyz_limit.retry_after(client_address(request))
    if retry_after is not None:
        return PlainTextResponse(
            "Too many readiness checks from this address.",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
    checks = await in_thread(health.readiness)
    ok = health.is_ready(checks)
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


def build_api() -> Starlette:
    return Starlette(
        routes=[
            RestMount("/api/v1", app=build_rest_api()),
            Route("/api/auth/signup", signup, methods=["POST"]),
            Route("/api/auth/login", login, methods=["POST"]),
            Route("/api/auth/logout", logout, methods=["POST"]),
            Route("/api/auth/refresh", refresh, methods=["POST"]),
            Route("/api/auth/forgot", forgot_password, methods=["POST"]),
            Route("/api/auth/reset", reset_password, methods=["POST"]),
            Route("/api/auth/handover", handover_sign_in, methods=["GET"]),
            Route("/api/links/{purpose:str}", open_link, methods=["GET"]),
            Route("/api/invites/accept", accept_invite, methods=["POST"]),
            Route("/api/team/transfer-ownership", transfer_ownership, methods=["POST"]),
            Route("/api/onboarding/stripe-key", connect_stripe_key, methods=["POST"]),
            Route("/api/onboarding/demo-key", connect_demo_key, methods=["POST"]),
            Route("/api/settings/webhook-secret", save_webhook_secret, methods=["POST"]),
            Route("/api/settings/stripe-key", save_stripe_key, methods=["POST"]),
            Route("/api/stripe/webhook", stripe_webhook, methods=["POST"]),
            Route("/api/exports/{kind:str}.csv", export_csv, methods=["GET"]),
            Route("/api/agent/connect", agent_login.connect_agent, methods=["POST"]),
            Route("/api/agent/token", agent_login.exchange_code, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )
