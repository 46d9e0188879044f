"""The sandbox application: localstripe's routes plus the sandbox's overrides.

localstripe builds its aiohttp app at import time. The sandbox builds its own
app with its own middlewares, re-registers localstripe's routes in their
original order, and puts its handlers in place of the ones it overrides (at the
same position, so a static route such as /v1/invoices/upcoming still wins over
/v1/invoices/{id}).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web
from localstripe import server as ls_server
from localstripe import webhooks
from localstripe.errors import UserError

from sandbox import (
    backdate,
    bulk,
    charges,
    crud,
    customers,
    events,
    exports,
    faults,
    idempotency,
    invoices,
    keys,
    lists,
    payment_methods,
    previews,
    prices,
    products,
    ratelimit,
    refunds,
    responses,
    snapshots,
    state,
    subscriptions,
    timeline,
)
from sandbox.errors import error_response, invalid_request
from sandbox.indexes import FIELD_INDEXES
from sandbox.params import read_json_or_form
from sandbox.state import (
    ACCOUNT_ID,
    INDEX,
    REQUEST_ID,
    RequestInfo,
    current_request,
    mark_dirty,
)

log = logging.getLogger("sandbox")

Handler = Callable[[web.Request], Any]
Route = tuple[str, str, Handler]

_installed = False


class Latency:
    """An artificial delay before each API call (sandbox only), to make races reproducible."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def snapshot(self) -> float:
        return 0.0  # never carried over a restart

    def restore(self, data: float) -> None:
        self.seconds = 0.0

    def reset(self) -> None:
        self.seconds = 0.0


LATENCY = Latency()


@web.middleware
async def latency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if LATENCY.seconds and request.path.startswith("/v1/"):
        await asyncio.sleep(LATENCY.seconds)
    return await handler(request)


async def set_latency(request: web.Request) -> web.Response:
    """POST /_config/latency {"seconds": 0.2}: slow every API call down; reset sets 0."""
    seconds = (await read_json_or_form(request)).get("seconds", 0)
    try:
        LATENCY.seconds = max(0.0, min(float(seconds), 30.0))
    except (TypeError, ValueError):
        raise invalid_request("`seconds` must be a number.", param="seconds") from None
    return web.json_response({"seconds": LATENCY.seconds})


def install() -> None:
    """Patch localstripe once per process (all patches are start-up only)."""
    global _installed
    if _installed:
        return
    state.install()
    responses.install()
    exports.install()
    crud.install()
    lists.install()
    events.install()
    charges.install()
    payment_methods.install()  # after charges: wraps its attach
    refunds.install()
    timeline.install()
    invoices.install()
    subscriptions.install()
    for cls in crud.CRUD_CLASSES:  # last: wraps the patched constructors
        if cls.object in FIELD_INDEXES:
            state.index_fields_after_init(cls)
    state.register("restricted_keys", keys.KEYS)
    state.register("idempotency", idempotency.CACHE)
    state.register("webhooks", events.WebhookRegistry())
    state.register("latency", LATENCY)
    state.register("rate_limit", ratelimit.LIMIT)
    state.register("faults", faults.FAULTS)
    state.register("clock", timeline.OFFSET)
    _installed = True


# -- middlewares -------------------------------------------------------------------


def _unrecognized(request: web.Request) -> web.Response:
    """Stripe answers unknown routes with a JSON 404, not an HTML page."""
    message = (
        f"Unrecognized request URL ({request.method}: {request.path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/."
    )
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=404)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UserError as exc:
        return error_response(exc)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return _unrecognized(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("sandbox error on %s %s", request.method, request.path)
        return web.json_response(
            {
                "error": {
                    "message": "An unknown error occurred in the sandbox.",
                    "type": "api_error",
                }
            },
            status=500,
        )


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A Stripe-style request id, recorded on events as `event.request`."""
    request_id = "req_" + state.random_token(14)
    request[REQUEST_ID] = request_id
    token = current_request.set(RequestInfo(request_id, request.headers.get("Idempotency-Key")))
    try:
        return await handler(request)
    finally:
        current_request.reset(token)
        if request.method != "GET":
            mark_dirty()  # localstripe also changes objects in place


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    # Stripe's `Date` is Stripe's clock; the sandbox's may be offset from the machine's.
    response.headers["Date"] = formatdate(timeline.wall_now(), usegmt=True)
    request_id = request.get(REQUEST_ID)
    if request_id and "Request-Id" not in response.headers:
        response.headers["Request-Id"] = request_id
    key = request.headers.get("Idempotency-Key")
    if key and request.method == "POST":
        response.headers["Idempotency-Key"] = key


# -- sandbox-only endpoints -----------------------------------------------------------


async def reset(request: web.Request) -> web.Response:
    """DELETE /_config/data: empty the store and every piece of sandbox state."""
    state.reset_all()
    return web.Response()


async def delete_webhook(request: web.Request) -> web.Response:
    if webhooks._webhooks.pop(request.match_info["id"], None) is None:
        raise invalid_request("No such webhook.", status=404)
    return web.Response()


async def account(request: web.Request) -> web.Response:
    """GET /v1/account: the one account the sandbox pretends to be."""
    created = min((obj.created for obj in INDEX.objects("customer")), default=1_700_000_000)
    return web.json_response(
        {
            "id": ACCOUNT_ID,
            "object": "account",
            "business_profile": {"name": "Billy Sandbox", "url": None},
            "charges_enabled": True,
            "country": "US",
            "created": created,
            "default_currency": "usd",
            "details_submitted": True,
            "email": "owner@example.com",
            "payouts_enabled": True,
            "settings": {"dashboard": {"display_name": "Billy Sandbox"}},
            "type": "standard",
        }
    )


def sandbox_routes() -> list[Route]:
    """Every route the sandbox adds or overrides; later entries win."""
    return [
        *crud.routes(),
        *charges.routes(),
        *payment_methods.routes(),  # after charges: its attach route wins
        *refunds.routes(),
        *lists.routes(),
        *prices.routes(),
        *products.routes(),
        *invoices.routes(),
        *subscriptions.routes(),
        *previews.routes(),  # subscription-change previews with prorations
        *customers.routes(),
        *snapshots.routes(),
        ("GET", "/v1/account", account),
        ("DELETE", "/_config/data", reset),
        ("DELETE", "/_config/webhooks/{id}", delete_webhook),
        ("POST", "/_config/restricted_keys", keys.create_key),
        ("DELETE", "/_config/restricted_keys/{key}", keys.delete_key),
        ("POST", "/_config/backdate", backdate.backdate_route),
        *bulk.routes(),
        ("POST", "/_config/latency", set_latency),
        ("POST", "/_config/rate_limit", ratelimit.set_rate_limit),
        ("GET", "/_config/rate_limit", ratelimit.get_rate_limit),
        ("POST", "/_config/faults", faults.set_faults),
        ("GET", "/_config/faults", faults.get_faults),
        ("DELETE", "/_config/faults", faults.clear_faults),
        ("POST", "/_config/clock", timeline.set_clock),
        ("GET", "/_config/clock", timeline.get_clock),
    ]


def build_app() -> web.Application:
    install()
    app = web.Application(
        middlewares=[
            error_middleware,
            context_middleware,
            keys.auth_middleware,
            ratelimit.rate_limit_middleware,  # before idempotency: a 429 is never replayed
            faults.fault_middleware,  # before idempotency too: a fault before the write is never saved
            idempotency.idempotency_middleware,
            latency_middleware,
        ],
        client_max_size=4 * 1024 * 1024,
    )
    app.on_response_prepare.append(ls_server.add_cors_headers)
    app.on_response_prepare.append(_add_headers)
    overrides = {(method, path): handler for method, path, handler in sandbox_routes()}
    placed: set[tuple[str, str]] = set()
    for route in ls_server.app.router.routes():
        method, path = route.method, route.resource.canonical
        handler = overrides.get((method, path), route.handler)
        placed.add((method, path))
        app.router.add_route(method, path, handler)
    for (method, path), handler in overrides.items():
        if (method, path) not in placed:
            app.router.add_route(method, path, handler)
    return app
