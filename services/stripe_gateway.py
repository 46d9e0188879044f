"""The only module that talks to Stripe.

The key is fetched from the secret store for each client, never kept in a module
global, and never put in a message: Stripe's own errors mask it, and the logging
scrubber catches anything else. Objects come back as plain dicts and are read
tolerantly (`.get`), because the sandbox answers in older API shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import stripe

from services.config import get_settings
from services.errors import StripeNotConnected, StripeRequestFailed
from services.secrets import get_secret_store

log = logging.getLogger(__name__)

# Pinned on purpose: a Stripe SDK upgrade must not change the shapes we parse.
STRIPE_API_VERSION = "2026-10-28.endive"
STRIPE_KEY_SECRET = "stripe-restricted-key"
PAGE_SIZE = 100


@dataclass(frozen=True)
class PermissionProbe:
    """One permission the key needs and a side-effect-free request that proves it.

    Reads list one object (200 when allowed). Writes update an id that cannot exist:
    Stripe answers 404 `resource_missing` when the key may write, 403 when it may not.
    """

    name: str  # Stripe's permission name, as its 403 messages spell it
    method: str
    path: str


@dataclass(frozen=True)
class RequiredPermission:
    """A row of the docs' permission table (resource, access) and the probes behind it."""

    resource: str
    access: str
    probes: tuple[PermissionProbe, ...]


REQUIRED_PERMISSIONS: tuple[RequiredPermission, ...] = (
    RequiredPermission("Charges", "Read", (PermissionProbe("rak_charge_read", "get", "/v1/charges"),)),
    RequiredPermission(
        "Customers",
        "Read + Write",
        (
            PermissionProbe("rak_customer_read", "get", "/v1/customers"),
            PermissionProbe("rak_customer_write", "post", "/v1/customers/cus_billyprobe"),
        ),
    ),
    RequiredPermission(
        "Subscriptions",
        "Read + Write",
        (
            PermissionProbe("rak_subscription_read", "get", "/v1/subscriptions"),
            PermissionProbe("rak_subscription_write", "post", "/v1/subscriptions/sub_billyprobe"),
        ),
    ),
    RequiredPermission(
        "Invoices",
        "Read + Write",
        (
            PermissionProbe("rak_invoice_read", "get", "/v1/invoices"),
            PermissionProbe("rak_invoice_write", "post", "/v1/invoices/in_billyprobe"),
        ),
    ),
    RequiredPermission("Refunds", "Write", (PermissionProbe("rak_refund_write", "post", "/v1/refunds/re_billyprobe"),)),
    RequiredPermission(
        "Payment Methods",
        "Read",
        (PermissionProbe("rak_payment_method_read", "get", "/v1/payment_methods/pm_billyprobe"),),
    ),
)


def make_client(key: str) -> stripe.StripeClient:
    settings = get_settings()
    kwargs: dict[str, Any] = {"stripe_version": STRIPE_API_VERSION, "max_network_retries": 2}
    if settings.stripe_api_base:
        kwargs["base_addresses"] = {"api": settings.stripe_api_base}
    return stripe.StripeClient(key, **kwargs)


def readable_error(exc: stripe.StripeError) -> str:
    """Stripe's own user-facing message when it gave one (it never contains the full key)."""
    message = getattr(exc, "user_message", None) or getattr(exc, "_message", None) or str(exc)
    return str(message).strip() or "Stripe refused the request."


def as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    return obj.to_dict()  # StripeObject → plain nested dict


def probe_permissions(key: str) -> dict[str, bool]:
    """Which required permissions the key has, by name. Raises `stripe.AuthenticationError`
    when Stripe does not know the key at all."""
    client = make_client(key)
    result: dict[str, bool] = {}
    for requirement in REQUIRED_PERMISSIONS:
        for probe in requirement.probes:
            params = {"limit": 1} if probe.method == "get" and probe.path.count("/") == 2 else {}
            try:
                client.raw_request(probe.method, probe.path, **params)
                result[probe.name] = True
            except stripe.PermissionError:
                result[probe.name] = False
            except stripe.InvalidRequestError as exc:
                # 404 resource_missing on the impossible id: the key was allowed to try.
                result[probe.name] = exc.http_status == 404
    return result


class StripeGateway:
    """Stripe calls made with the connected key. `key_provider` exists so tests and the
    control plane can supply the key differently; by default it is the secret store."""

    def __init__(self, key_provider: Callable[[], str | None] | None = None) -> None:
        self._key_provider = key_provider or (lambda: get_secret_store().get(STRIPE_KEY_SECRET))

    def _client(self) -> stripe.StripeClient:
        key = self._key_provider()
        if not key:
            raise StripeNotConnected()
        return make_client(key)

    def _call(self, fn: Callable[[stripe.StripeClient], Any]) -> Any:
        try:
            return fn(self._client())
        except stripe.StripeError as exc:
            log.warning("Stripe refused a request: %s", readable_error(exc))
            raise StripeRequestFailed(readable_error(exc), code=getattr(exc, "code", None) or "stripe_error") from exc

    def list_page(
        self, resource: str, starting_after: str | None = None, limit: int = PAGE_SIZE
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of a list endpoint, newest first, as Stripe lists."""
        params: dict[str, Any] = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        page = self._call(lambda c: getattr(c.v1, resource).list(params=params))
        return [as_dict(o) for o in page.data], bool(page.has_more)

    def iterate(self, resource: str, starting_after: str | None = None) -> Iterator[list[dict[str, Any]]]:
        while True:
            items, has_more = self.list_page(resource, starting_after)
            if items:
                yield items
                starting_after = items[-1]["id"]
            if not has_more or not items:
                return

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return as_dict(self._call(lambda c: c.v1.charges.retrieve(charge_id)))

    def create_refund(
        self,
        charge_id: str,
        amount: int | None,
        reason: str | None,
        idempotency_key: str,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"charge": charge_id}
        if amount is not None:
            params["amount"] = amount
        if reason:
            params["reason"] = reason
        if metadata:
            params["metadata"] = metadata
        return as_dict(
            self._call(lambda c: c.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key}))
        )
