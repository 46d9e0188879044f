"""Every refusal of the REST API as one JSON shape: `{"error": {"code", "message"}}`.

`code` is stable (scripts branch on it); `message` is the sentence the dashboard would show,
written for a person. The HTTP status follows the error's kind: 401 not signed in, 403 refused
(role, token scope, refund cap, plan), 404 unknown, 409 idempotency conflicts, 422 input Billy
cannot use, 429 too many requests, 502 and 503 when Stripe (or Billy's link to it) is the trouble,
503 too when Billy's own database is not answering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from services.api_idempotency import IdempotencyConflict
from services.errors import (
    BillyError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    PlanLimitReached,
    RefundBudgetExceeded,
    RefundCapExceeded,
    SettingsInvalid,
    StoreUnavailable,
    StripeKeyMissingPermission,
    StripeKeyUnknown,
    StripeNotConnected,
    StripeRateLimited,
    StripeRequestFailed,
    StripeUnreachable,
    ValidationFailed,
    WritesFrozen,
)

STRIPE_RETRY_SECONDS = 2  # Retry-After when Stripe (or Billy's budget of Stripe requests) is busy


class FieldProblem(BaseModel):
    location: str = Field(description="Where the problem is, e.g. `body.amount` or `query.limit`.")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for programs: e.g. `refund_cap_exceeded`, `not_found`.")
    message: str = Field(description="For a person: what went wrong and what to do.")
    fields: list[FieldProblem] | None = Field(default=None, description="Request validation: each field's problem.")


class ErrorBody(BaseModel):
    """Every error the API answers."""

    error: ErrorDetail


class ApiRateLimited(BillyError):
    """Too many requests from one token (or one signed-in member) in the window."""

    code = "rate_limited"

    def __init__(self, retry_after: int, limit: str) -> None:
        super().__init__(
            f"Too many requests: this API allows {limit} per agent token (or per member). "
            f"Wait {retry_after} second{'s' if retry_after != 1 else ''} and try again."
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class ErrorAnswer:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def body_of(code: str, message: str, fields: list[FieldProblem] | None = None) -> dict[str, Any]:
    return ErrorBody(error=ErrorDetail(code=code, message=message, fields=fields)).model_dump(
        mode="json", exclude_none=True
    )


def _status_and_code(exc: BillyError) -> tuple[int, str]:
    """The HTTP status and stable code of a service's refusal (most specific kind first)."""
    if isinstance(exc, NotAuthenticated):
        return 401, "not_authenticated"
    if isinstance(exc, ApiRateLimited):
        return 429, "rate_limited"
    if isinstance(exc, NotFound):  # before PermissionDenied: an unknown refund request is both
        return 404, "not_found"
    if isinstance(exc, RefundBudgetExceeded):  # before its parent kind, RefundCapExceeded
        return 403, "refund_budget_exceeded"
    if isinstance(exc, RefundCapExceeded):
        return 403, "refund_cap_exceeded"
    if isinstance(exc, PlanLimitReached):
        return 403, "plan_limit_reached"
    if isinstance(exc, WritesFrozen):
        return 403, "writes_frozen"
    if isinstance(exc, PermissionDenied):
        return 403, "permission_denied"
    if isinstance(exc, IdempotencyConflict):
        return 409, exc.code
    if isinstance(exc, ValidationFailed):
        return 422, exc.code
    if isinstance(exc, StripeNotConnected | SettingsInvalid | StoreUnavailable):
        return 503, exc.code
    if isinstance(exc, StripeUnreachable):
        return 503, "stripe_unreachable"
    if isinstance(exc, StripeRateLimited):
        return 503, "stripe_busy"
    if isinstance(exc, StripeKeyUnknown):
        return 502, "stripe_key_unknown"
    if isinstance(exc, StripeKeyMissingPermission):
        return 502, "stripe_permission_missing"
    if isinstance(exc, StripeRequestFailed):
        if exc.code == "resource_missing":
            return 404, "not_found"
        if exc.outcome_unknown:
            return 502, "stripe_error"
        return 422, "stripe_refused"  # Stripe answered and said no: the message is its reason
    return 422, exc.code or "error"


def answer_for(exc: BillyError) -> ErrorAnswer:
    status, code = _status_and_code(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="billy"'
    if isinstance(exc, ApiRateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    elif status == 503:
        headers["Retry-After"] = str(STRIPE_RETRY_SECONDS)
    return ErrorAnswer(status, body_of(code, exc.message), headers)


def _responses(*statuses: int, json_ref: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses. `json_ref`: name the schema by reference in
    an application/json body, for routes whose success is not JSON (FastAPI would otherwise put
    the error model under the success's media type)."""
    words = {
        400: "The request could not be read (a body that is not JSON).",
        401: "Not authenticated: no bearer token, or one that is invalid, revoked or expired.",
        403: "Refused: the role, the agent token's scope, the refund cap or the plan does not allow it.",
        404: "Not found (in Billy's synced store, or at Stripe).",
        409: "Idempotency conflict: the key was used for another request, or that request is still running.",
        422: "The request cannot be used: a field is missing or wrong, or Stripe refused it (the message says why).",
        429: "Too many requests for this token (or member): wait `Retry-After` seconds.",
        502: "Stripe answered with an error whose outcome is unknown, or Billy's key is not accepted.",
        503: "Stripe cannot be reached now, or Stripe is not connected yet.",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": words[status]}
        if json_ref:
            entry["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        else:
            entry["model"] = ErrorBody
        if status == 429:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}, "required": True}
            }
        out[status] = entry
    return out


# What every operation may answer besides its success: reads and writes.
READ_ERRORS = _responses(400, 401, 403, 404, 422, 429, 502, 503)
WRITE_ERRORS = _responses(400, 401, 403, 404, 409, 422, 429, 502, 503)
DOWNLOAD_ERRORS = _responses(400, 401, 403, 404, 422, 429, 502, 503, json_ref=True)
