"""The REST API, /api/v1: a FastAPI app mounted on Reflex's backend (see `routes.build_api`).

Its OpenAPI document is generated from this code and served at /api/v1/openapi.json (the
interactive page at /api/v1/docs). Each route is an edge: it parses input, takes the Actor
from the bearer credential and calls the one service function a page calls.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from billy_app.api.v1 import charges, customers, invoices, me, owner, refund_requests, reports, subscriptions
from billy_app.api.v1.calls import no_unknown_query
from billy_app.api.v1.errors import FieldProblem, answer_for, body_of
from billy_app.api.v1.rate import DEFAULT_LIMIT
from billy_app.blocking import in_thread
from services import audit
from services.errors import BillyError
from services.outages import store_outage

log = logging.getLogger(__name__)

DESCRIPTION = f"""
Billy's REST API: the same service functions, permission engine and audit log as the dashboard.

**Authentication.** `Authorization: Bearer <token>`: an agent token (`billy_at_…`, from Settings →
Agents or `agent-billy login`; it may be scoped below its member's role: read-only, a lower refund
cap, some actions only, an expiry) or a 1-hour access token. Cookies are not accepted. The role,
caps and plan are read on every call, and every call is audited with source `api` (and the token).

**Writes** accept an `Idempotency-Key` header (optional; recommended). A repeat with the same key
and the same request returns the first answer, with `Idempotent-Replayed: true`, and makes no
second change in Stripe; the same key with another request, or while the first is still running,
is refused with 409. Keys are per token (or member) and kept for 24 hours. Answers that say what
happened are kept, refusals included; after a failure whose outcome is open (502, 503) the same
request may be sent again with the same key (Stripe still makes one change). Without the header,
each request is a new write.

**Errors** are `{{"error": {{"code": "…", "message": "…"}}}}`: `code` is stable, `message` is for a
person. 401 not authenticated (missing, invalid, revoked or expired token); 403 refused (role,
token scope, refund cap, plan); 404 not found; 409 idempotency conflict; 422 invalid input or
refused by Stripe; 429 rate limited (`Retry-After`); 502/503 Stripe unreachable or failing.

**Lists** page by cursor: pass `next_cursor` as `cursor`; `has_more` is false on the last page.
Money is in minor units (cents) with its currency; times are Unix seconds or ISO 8601 UTC.

**Rate limit:** {DEFAULT_LIMIT} per agent token (per member for an access token).
"""


def _validation_problems(exc: RequestValidationError) -> list[FieldProblem]:
    problems = []
    for error in exc.errors()[:20]:
        location = ".".join(str(part) for part in error.get("loc", ()))[:200]
        problems.append(FieldProblem(location=location, message=str(error.get("msg", "invalid"))[:300]))
    return problems


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = _validation_problems(exc)
    first = f"{problems[0].location}: {problems[0].message}" if problems else "the request is not valid"
    message = f"The request cannot be used ({first})."
    return JSONResponse(body_of("invalid_request", message, problems), status_code=422)


async def _billy_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BillyError)
    answer = answer_for(exc)
    return JSONResponse(answer.body, status_code=answer.status_code, headers=answer.headers)


HTTP_CODES = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed"}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = {
        400: "The request body could not be read: send JSON (Content-Type: application/json).",
        404: "There is no such API path.",
        405: "This path does not take that method.",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse(body_of(code, message), status_code=exc.status_code, headers=exc.headers)


_LOGGED = "billy.error_logged"


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    if (outage := store_outage(exc)) is not None:  # not a bug: the store is away (one line, no traceback)
        log.warning(
            "The store did not answer on %s %s (%s)", request.method, request.url.path[:200], type(exc).__name__
        )
        request.scope[_LOGGED] = True
        return await _billy_error(request, outage)
    log.error("Internal error on %s %s", request.method, request.url.path[:200], exc_info=exc)
    request.scope[_LOGGED] = True
    return JSONResponse(body_of("internal_error", "Billy hit an internal error; it is logged."), status_code=500)


class _Contained:
    """Starlette answers an unexpected exception with the 500 above and then raises it again, for
    the server to log; it is logged already, so stop it here (the answer has been sent). One that
    breaks an answer already under way (a CSV stream) is logged here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if not started or scope["type"] != "http":
                raise
            if not scope.get(_LOGGED):
                log.exception("Internal error during the answer to %s", str(scope.get("path", ""))[:200])


async def record_reads(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Every successful GET is one audit row (`agents.read`) naming the route and its ids, with the
    token: what a script looked up is on record. Exports have their own row, writes theirs."""
    response = await call_next(request)
    actor = getattr(request.state, "actor", None)
    route = request.scope.get("route")
    if request.method == "GET" and response.status_code < 300 and actor is not None and route is not None:
        path = getattr(route, "path", "")
        if not path.startswith("/exports"):
            ids = [str(v) for v in request.path_params.values()]
            await in_thread(audit.record_read, actor, f"GET {path}", *ids)
    return response


def build_rest_app() -> FastAPI:
    """The FastAPI app itself (tests drive it directly over ASGI)."""
    app = FastAPI(
        title="Agent Billy API",
        version="1",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(no_unknown_query)],
    )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(BillyError, _billy_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.middleware("http")(record_reads)
    for module in (me, customers, charges, refund_requests, subscriptions, invoices, reports, owner):
        app.include_router(module.router)
    return app


def build_rest_api() -> ASGIApp:
    """What `routes.build_api` mounts at /api/v1."""
    return _Contained(build_rest_app())


class RestMount(Mount):
    """`Mount` for the API that takes every path below it, even one with an encoded line break
    (Starlette's own pattern stops at one and leaves it to the next route, which answers in
    text): every request under /api/v1 gets the API's JSON answer."""

    def __init__(self, path: str, app: ASGIApp) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(f"^{re.escape(self.path)}/(?P<path>.*)$", re.DOTALL)
