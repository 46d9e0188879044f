"""Billy's own billing: each organisation's subscription to Billy, in Billy's Stripe account.

This is Billy's account (`BILLY_CONTROLPLANE_STRIPE_SECRET_KEY`), never a customer's: the
instances hold the customers' restricted keys, the control plane holds this one alone.

- Plans are Stripe Prices found by lookup key (`agent_billy_starter`, …): the operator sets the
  amounts in Stripe, so a price change needs no deployment. `ensure_prices` creates them where
  they are missing (the sandbox, a fresh test-mode account).
- Every write carries an idempotency key derived from the organisation and what is being done,
  so a retry after a lost answer (the SDK's own, or a signup submitted again) makes the change once.
- `handle_webhook` checks the delivery's signature, then hands what it means to the lifecycle:
  a subscription ended in Stripe takes the cancel path, a failed payment marks the organisation
  past due. Stripe delivers at least once and in any order, so each event is handled once and a
  subscription's status is read back from Stripe rather than trusted from the delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import stripe
from sqlalchemy.exc import IntegrityError

from controlplane.config import ControlPlaneSettings
from controlplane.store import Organisation, StripeEventSeen
from services.errors import BillyError, WebhookSignatureInvalid
from services.plans import PLANS
from services.stripe_gateway import STRIPE_API_VERSION, verify_webhook

if TYPE_CHECKING:
    from controlplane.lifecycle import ControlPlane

log = logging.getLogger("billy.controlplane.billing")

# Amounts for a sandbox or a fresh test-mode account only (cents a month). Billy's real prices
# are whatever the operator sets on the prices in Billy's Stripe account; nothing here promises one.
PLACEHOLDER_AMOUNTS: Mapping[str, int] = {"starter": 2900, "pro": 7900, "business": 19900}

HANDLED_EVENTS = ("customer.subscription.deleted", "customer.subscription.updated", "invoice.payment_failed")
ENDED_STATUSES = ("canceled", "incomplete_expired")


class BillingFailed(BillyError):
    """Billy's Stripe account did not do what was asked; the message says what and why."""

    code = "billing_failed"


def idempotency_key(org: Organisation, purpose: str) -> str:
    """The key of one intended change: the same organisation row and purpose give the same key.

    The row's creation time, to the microsecond, is in it so that a slug signed up again (a
    development database made afresh, or two test databases sharing one sandbox within the same
    second) never meets the answer Stripe saved for another row."""
    return f"billy-cp-{org.slug}-{org.created_at:%Y%m%dT%H%M%S%f}-{purpose}"


class BillyStripe:
    """Billy's Stripe account, as the lifecycle uses it."""

    def __init__(self, settings: ControlPlaneSettings) -> None:
        self.settings = settings
        self._client: stripe.StripeClient | None = None

    @property
    def client(self) -> stripe.StripeClient:
        if not self.settings.stripe_secret_key:
            raise BillingFailed(
                "BILLY_CONTROLPLANE_STRIPE_SECRET_KEY is not set: the control plane needs Billy's own Stripe "
                "secret key to bill organisations."
            )
        if self._client is None:
            kwargs: dict[str, Any] = {
                "stripe_version": STRIPE_API_VERSION,
                # The SDK retries a lost answer, a 409 or a 5xx with the same idempotency key.
                "max_network_retries": self.settings.stripe_retries,
                "http_client": stripe.RequestsClient(timeout=self.settings.stripe_timeout_seconds),
            }
            if self.settings.stripe_api_base:
                kwargs["base_addresses"] = {"api": self.settings.stripe_api_base}
            self._client = stripe.StripeClient(self.settings.stripe_secret_key, **kwargs)
        return self._client

    @contextmanager
    def _asking(self, doing: str) -> Iterator[None]:
        """Stripe's refusals and outages as one error that says what Billy was doing."""
        try:
            yield
        except stripe.StripeError as exc:
            detail = exc.user_message or str(exc) or type(exc).__name__
            log.warning("Billy's Stripe account did not %s: %s", doing, detail)
            raise BillingFailed(f"Billy's Stripe account did not {doing}: {detail}") from exc

    def lookup_key(self, plan: str) -> str:
        return f"{self.settings.price_lookup_prefix}{plan}"

    def price_id(self, plan: str) -> str:
        """The active Price of `plan` in Billy's account, by its lookup key. Asked each time, not
        cached: an operator who moves a lookup key to a new price changes what the next signup pays."""
        with self._asking(f"find the price of the {plan} plan"):
            found = self.client.v1.prices.list(
                params={"lookup_keys": [self.lookup_key(plan)], "active": True, "limit": 1}
            )
        if not found.data:
            raise BillingFailed(
                f"Billy's Stripe account has no active price with lookup key {self.lookup_key(plan)!r}: "
                f"create the {PLANS[plan].label} plan's monthly price with that lookup key."
            )
        return str(found.data[0].id)

    def monthly_amounts(self) -> dict[str, tuple[int, str]]:
        """What each plan costs now, as Billy's Stripe account has it: {plan: (amount in cents, currency)}.

        For the signup page: the prices shown are the ones Stripe will charge, not a copy in code.
        A plan without a price in the account is left out."""
        amounts: dict[str, tuple[int, str]] = {}
        keys = {self.lookup_key(plan): plan for plan in PLANS}
        with self._asking("list Billy's plan prices"):
            found = self.client.v1.prices.list(params={"lookup_keys": list(keys), "active": True, "limit": 100})
        for price in found.data:
            plan = keys.get(str(price.lookup_key))
            if plan is not None and price.unit_amount is not None:
                amounts[plan] = (int(price.unit_amount), str(price.currency))
        return amounts

    def ensure_prices(self, amounts: Mapping[str, int] = PLACEHOLDER_AMOUNTS, currency: str = "usd") -> dict[str, str]:
        """Every plan's monthly price, created where Billy's account has none (sandbox, new test account)."""
        prices: dict[str, str] = {}
        for plan, amount in amounts.items():
            try:
                prices[plan] = self.price_id(plan)
                continue
            except BillingFailed:
                pass
            key = self.lookup_key(plan)
            with self._asking(f"create the price of the {plan} plan"):
                price = self.client.v1.prices.create(
                    params={
                        "product_data": {"name": f"Agent Billy {PLANS[plan].label}"},
                        "unit_amount": amount,
                        "currency": currency,
                        "recurring": {"interval": "month"},
                        "lookup_key": key,
                    },
                    options={"idempotency_key": f"billy-cp-price-{key}-{amount}-{currency}"},
                )
            prices[plan] = str(price.id)
        return prices

    def create_customer(self, org: Organisation) -> str:
        with self._asking(f"create the customer for {org.slug}"):
            customer = self.client.v1.customers.create(
                params={
                    "name": org.name,
                    "email": org.owner_email,
                    "metadata": {"billy_org": org.slug},
                },
                options={"idempotency_key": idempotency_key(org, "customer")},
            )
        return str(customer.id)

    def create_subscription(self, org: Organisation, customer: str, trial_end: datetime | None, purpose: str) -> str:
        """A subscription to `org.plan`: in trial until `trial_end` (no card needed), else waiting for payment."""
        params: dict[str, Any] = {
            "customer": customer,
            "items": [{"price": self.price_id(org.plan)}],
            "metadata": {"billy_org": org.slug},
        }
        if trial_end is not None:
            params["trial_end"] = int(trial_end.timestamp())
        else:
            # No trial left and maybe no card yet: the first invoice waits open instead of failing the call.
            params["payment_behavior"] = "default_incomplete"
        with self._asking(f"create the subscription for {org.slug}"):
            subscription = self.client.v1.subscriptions.create(
                params=params,  # type: ignore[arg-type]  # built as a dict; Stripe checks it
                options={"idempotency_key": idempotency_key(org, purpose)},
            )
        return str(subscription.id)

    def change_plan(self, org: Organisation, plan: str, purpose: str) -> None:
        """The subscription's one item moved to `plan`'s price (Stripe prorates the period)."""
        subscription_id = _required(org.stripe_subscription_id, org.slug)
        price = self.price_id(plan)
        with self._asking(f"change {org.slug}'s subscription to the {plan} plan"):
            subscription = self.client.v1.subscriptions.retrieve(subscription_id)
            item = subscription["items"]["data"][0]["id"]
            self.client.v1.subscriptions.update(
                subscription_id,
                params={"items": [{"id": item, "price": price}], "metadata": {"billy_org": org.slug}},
                options={"idempotency_key": idempotency_key(org, purpose)},
            )

    def cancel_subscription(self, subscription_id: str) -> None:
        """Cancelled now, no further invoice; already cancelled counts as done (a retry)."""
        try:
            with self._asking(f"cancel subscription {subscription_id}"):
                self.client.v1.subscriptions.cancel(subscription_id)
        except BillingFailed as failure:
            if not isinstance(failure.__cause__, stripe.InvalidRequestError):
                raise
            if self.subscription_status(subscription_id) not in ENDED_STATUSES:
                raise
            log.info("subscription %s was already cancelled", subscription_id)

    def subscription_status(self, subscription_id: str) -> str:
        """The subscription's status as Stripe has it now (deliveries can arrive out of order)."""
        with self._asking(f"read subscription {subscription_id}"):
            return str(self.client.v1.subscriptions.retrieve(subscription_id).status)

    def verify_event(self, payload: bytes, signature_header: str, now: datetime) -> dict[str, Any]:
        """The event in a delivery whose signature matches the endpoint's secret and is recent."""
        secret = self.settings.stripe_webhook_secret
        if not secret:
            raise WebhookSignatureInvalid(
                "BILLY_CONTROLPLANE_STRIPE_WEBHOOK_SECRET is not set: no delivery can be checked, so none is accepted."
            )
        return verify_webhook(
            payload, signature_header, secret, self.settings.webhook_tolerance_seconds, now=now.timestamp()
        )


def _required(subscription_id: str | None, slug: str) -> str:
    if not subscription_id:
        raise BillingFailed(f"{slug} has no subscription in Billy's Stripe account yet.")
    return subscription_id


def handle_webhook(plane: ControlPlane, payload: bytes, signature_header: str, now: datetime) -> str:
    """One delivery to the control plane's Stripe endpoint: checked, handled once, and what was done.

    Raises `WebhookSignatureInvalid` (answer 400) for a delivery that is not Stripe's. Anything
    else raised means "not handled yet": answer 5xx and Stripe delivers again."""
    event = plane.billing.verify_event(payload, signature_header, now)
    event_id, kind = str(event.get("id", "")), str(event.get("type", ""))
    if kind not in HANDLED_EVENTS:
        return f"ignored {kind or 'an event without a type'}"
    with plane.store.session() as session:
        if session.get(StripeEventSeen, event_id) is not None:
            return f"already handled {event_id}"
    obj: dict[str, Any] = event.get("data", {}).get("object", {})
    if kind == "customer.subscription.deleted":
        outcome = plane.subscription_ended(str(obj.get("id", "")), now)
    elif kind == "customer.subscription.updated":
        subscription_id = str(obj.get("id", ""))
        outcome = plane.subscription_changed(subscription_id, plane.billing.subscription_status(subscription_id), now)
    else:
        outcome = plane.payment_failed(str(obj.get("customer", "")), str(obj.get("id", "")), now)
    try:
        with plane.store.session() as session:
            session.add(StripeEventSeen(id=event_id, type=kind, received_at=now))
    except IntegrityError:
        pass  # a second delivery of the same event handled alongside: both outcomes are idempotent
    return outcome
