"""Who is calling, and how a write runs: the two things every route of /api/v1 shares.

The Actor comes from the `Authorization: Bearer …` header only (an agent token `billy_at_…`, or
a 1-hour access token), never from a cookie: a browser's ambient credentials must not reach
this door, so it needs no CSRF defence. Each request then counts against the caller's rate limit.

A write runs under its `Idempotency-Key` (`services.api_idempotency`): a repeat of the same
request gets the first answer back (same status, same JSON, header `Idempotent-Replayed: true`)
and Stripe is not asked twice; the Stripe idempotency key handed to the service is derived from
the caller and that key. Without the header, the write runs once under a fresh key of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from billy_app.api.bearer import actor_from_token, bearer_token
from billy_app.api.http import client_address, user_agent
from billy_app.api.v1.errors import STRIPE_RETRY_SECONDS, answer_for
from billy_app.api.v1.rate import caller_limit
from services import api_idempotency
from services.errors import BillyError
from services.permissions import Actor, Source

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An agent token (`billy_at_…`, Settings → Agents or `agent-billy login`) or an access token.",
)


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


_declared_query: dict[int, frozenset[str]] = {}


def no_unknown_query(request: Request) -> None:
    """Refuse query parameters the operation does not declare: a misspelt filter
    (`?stauts=failed`) must not quietly list or export everything."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant):
        return
    known = _declared_query.get(id(route))
    if known is None:
        known = _declared_query[id(route)] = _query_names(dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", unknown[0][:40]),
                    "msg": f"Unknown query parameter (this operation takes: {allowed})",
                    "type": "extra_forbidden",
                }
            ]
        )


def current_actor(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]
) -> Actor:
    """The verified caller (role, plan and token scope read from the store now), rate-limited."""
    actor = actor_from_token(bearer_token(request.headers), Source.API, client_address(request), user_agent(request))
    caller_limit().hit(actor)
    request.state.actor = actor  # for the read's audit row (`app.record_reads`)
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]

IDEMPOTENCY_HEADER = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=255,
    pattern=r"^[!-~]+$",
    description=(
        "Makes the write safe to retry: a repeat with the same key and the same request returns the "
        "first answer (no second change in Stripe); the same key with another request is refused (409). "
        "Keys are per token (or member) and kept 24 hours. Optional: without it the write runs once."
    ),
)


@dataclass(frozen=True)
class Write:
    """One write request: its caller, path and optional Idempotency-Key."""

    actor: Actor
    method: str
    path: str
    key: str | None

    def run(self, body: BaseModel | None, act: Callable[[str], Any], status_code: int = 200) -> JSONResponse:
        """Run `act(stripe_idempotency_key)` once for this request and answer its result as JSON
        with `status_code` (or the refusal as an error): replayed when the key was seen before."""

        def perform(stripe_key: str) -> tuple[int, dict[str, Any]]:
            try:
                return status_code, jsonable_encoder(act(stripe_key))
            except BillyError as exc:
                answer = answer_for(exc)
                return answer.status_code, answer.body

        if self.key is None:
            status, content = perform("api_" + secrets.token_hex(24))
            return JSONResponse(content, status_code=status, headers=_retry_headers(status))
        payload = body.model_dump(mode="json") if body is not None else None
        digest = api_idempotency.request_digest(self.method, self.path, payload)
        answer = api_idempotency.run(self.actor, self.key, digest, perform)
        headers = _retry_headers(answer.status_code)
        if answer.replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


def _retry_headers(status: int) -> dict[str, str]:
    return {"Retry-After": str(STRIPE_RETRY_SECONDS)} if status == 503 else {}


def write_request(
    request: Request,
    actor: CurrentActor,
    idempotency_key: Annotated[str | None, IDEMPOTENCY_HEADER] = None,
) -> Write:
    return Write(actor, request.method, request.url.path, idempotency_key)


WriteRequest = Annotated[Write, Depends(write_request)]
