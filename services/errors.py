"""One error hierarchy. Every message is written for the person who will read it."""

from __future__ import annotations


class BillyError(Exception):
    """Base of every error an edge may show to a user as-is."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ValidationFailed(BillyError):
    code = "invalid"


class NotAuthenticated(BillyError):
    code = "not_authenticated"

    def __init__(self, message: str = "Please sign in again.") -> None:
        super().__init__(message)


class InvalidCredentials(BillyError):
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("That email and password do not match an account here.")


class PermissionDenied(BillyError):
    code = "permission_denied"


class RefundCapExceeded(PermissionDenied):
    code = "refund_cap_exceeded"


class RefundBudgetExceeded(RefundCapExceeded):
    """Over a rolling 24-hour refund budget: like an over-cap refund, it may become a request."""

    code = "refund_budget_exceeded"


class WritesFrozen(PermissionDenied):
    """The Owner froze this member, this agent token, or every billing change (issue 15)."""

    code = "writes_frozen"


class PlanLimitReached(PermissionDenied):
    code = "plan_limit_reached"


class SignupClosed(BillyError):
    code = "signup_closed"


class NotFound(BillyError):
    code = "not_found"


class StripeKeyRejected(BillyError):
    """A pasted key we will not store. `code` tells the page which advice to show."""


class StripeNotConnected(BillyError):
    code = "stripe_not_connected"

    def __init__(self) -> None:
        super().__init__(
            "Stripe is not connected: the Owner connects a restricted key in Settings → Stripe connection "
            "(or in the set-up wizard)."
        )


class StripeRequestFailed(BillyError):
    """Stripe refused or failed a request; the message is Stripe's, made readable.

    `outcome_unknown` is true when the request may have reached Stripe and done its work even
    though no answer came back (a dropped connection, a 5xx): a write must then be checked,
    not assumed undone."""

    code = "stripe_error"

    def __init__(self, message: str, *, code: str | None = None, outcome_unknown: bool = False) -> None:
        super().__init__(message, code=code)
        self.outcome_unknown = outcome_unknown


class StripeUnreachable(StripeRequestFailed):
    """No answer from Stripe (network or Stripe's own outage)."""

    code = "stripe_unreachable"


class StripeRateLimited(StripeRequestFailed):
    """Stripe answered 429: it is there and knows the key, but Billy's request budget is in use."""

    code = "rate_limited"


class StripeKeyUnknown(StripeRequestFailed):
    """Stripe does not know the key at all (revoked, mistyped, another account's)."""

    code = "stripe_key_unknown"


class WebhookSignatureInvalid(BillyError):
    """A delivery whose signature does not match the endpoint's secret, or is too old."""

    code = "webhook_signature_invalid"


class SettingsInvalid(BillyError):
    """A `BILLY_*` setting holds a value Billy cannot use; the message names the variable and what it accepts."""

    code = "settings_invalid"


class StripeKeyMissingPermission(StripeRequestFailed):
    """The connected restricted key may not do this (Stripe's 403): the message names the
    permission to add to the key in the Stripe Dashboard, as the member cannot fix it in Billy."""

    code = "stripe_permission_missing"


class StoreUnavailable(BillyError):
    """Billy's database did not answer (it went away, restarts, or fails over): an outage, not a
    refusal and not a bug. What the action had written in its transaction was rolled back; a
    change already made in Stripe is found again by the next try (the same request key) or by sync."""

    code = "store_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "Billy's database is not answering right now, so this was not finished. Try again in a moment."
        )
