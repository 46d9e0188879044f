"""Stripe-shaped API errors.

localstripe's `UserError` always answers `type: invalid_request_error` with a bare
message. Real Stripe errors carry `type`, `code`, `param`, `decline_code` and a
`doc_url`, and client SDKs pick their exception class from the HTTP status and
`type`, so the sandbox builds the whole `error` object itself.
"""

from __future__ import annotations

from typing import Any

from localstripe.errors import UserError

DOC_URL = "https://stripe.com/docs/error-codes/"

# Stripe names most objects by their `object` value in "No such ..." messages,
# with a few historical exceptions.
_MISSING_NAMES = {
    "payment_method": "PaymentMethod",
    "setup_intent": "setupintent",
}


class StripeApiError(UserError):
    """An error answered with the exact `{"error": {...}}` body Stripe sends.

    It subclasses localstripe's `UserError` so that errors raised from inside
    patched localstripe code travel through the same handling path.
    """

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        Exception.__init__(self, error.get("message", ""))
        self.code = status
        self.body = {"error": {k: v for k, v in error.items() if v is not None}}

    @property
    def error(self) -> dict[str, Any]:
        return self.body["error"]


def invalid_request(
    message: str,
    *,
    status: int = 400,
    param: str | None = None,
    code: str | None = None,
) -> StripeApiError:
    """Stripe: malformed or refused requests are `invalid_request_error` (docs: api/errors)."""
    return StripeApiError(
        status,
        {
            "type": "invalid_request_error",
            "message": message,
            "param": param,
            "code": code,
            "doc_url": DOC_URL + code.replace("_", "-") if code else None,
        },
    )


def missing_name(object_name: str) -> str:
    return _MISSING_NAMES.get(object_name, object_name)


def resource_missing(object_name: str, object_id: str, *, param: str = "id", status: int = 404) -> StripeApiError:
    """Stripe: an unknown id answers `resource_missing`, "No such customer: 'cus_x'".

    404 when the id is in the path, 400 when it is a parameter such as
    `starting_after` (docs: api/errors, error-codes#resource-missing).
    """
    return invalid_request(
        f"No such {missing_name(object_name)}: '{object_id}'",
        status=status,
        param=param,
        code="resource_missing",
    )


def unknown_parameter(name: str) -> StripeApiError:
    """Stripe: "Received unknown parameter: x" with code `parameter_unknown`."""
    return invalid_request(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def invalid_integer(name: str, value: Any) -> StripeApiError:
    return invalid_request(f"Invalid integer: {value}", param=name, code="parameter_invalid_integer")


def mask_key(key: str, visible: int) -> str:
    """Stripe masks keys in messages: the `rk_test_` prefix, stars, the last characters."""
    parts = key.split("_", 2)
    prefix = "_".join(parts[:2]) + "_" if len(parts) == 3 else ""
    secret = key[len(prefix) :]
    shown = secret[-visible:] if len(secret) > visible else ""
    return prefix + "*" * (len(secret) - len(shown)) + shown


def error_response(exc: UserError) -> Any:
    """The HTTP answer for an error raised by sandbox or localstripe code.

    localstripe refuses unexpected parameters with "Unexpected foo"; Stripe says
    "Received unknown parameter: foo" (code `parameter_unknown`).
    """
    if not isinstance(exc, StripeApiError):
        message = exc.body.get("error", {}).get("message", "")
        if message.startswith("Unexpected "):
            exc = unknown_parameter(message.removeprefix("Unexpected ").split(", ")[0])
    return exc.to_response()
