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
        super().__init__("Stripe is not connected yet: the Owner connects it in the onboarding wizard.")


class StripeRequestFailed(BillyError):
    """Stripe refused or failed a request; the message is Stripe's, made readable."""

    code = "stripe_error"
