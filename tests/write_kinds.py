"""The four kinds of Stripe write the fault and crash tests put through trouble, arranged alike.

Each kind arranges its object in the sandbox and the store, makes the write as a person would
(through the service, with an idempotency key), and answers from Stripe itself: how many times
Stripe made the change under that key, and whether the store now equals Stripe."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from services import billing, customers, invoice_changes, stripe_keys, subscription_changes
from services.db import session_scope
from services.models import StripeCharge, StripeCustomer, StripeInvoice, StripeRefund, StripeSubscriptionItem
from services.permissions import Actor
from tests.conftest import StripePeer
from tests.stripe_helpers import make_charge, make_customer, sync_lists

NEW_EMAIL = "jane.new@example.com"
REFUND = 1000


@dataclass
class Arranged:
    """One write, ready to make: `run(actor, key)` makes it; `made(key)` counts Stripe's changes
    under the key; `store_matches()` compares the store with Stripe."""

    kind: str
    action: str  # the audit row's action
    call: str  # the gateway call that meets the fault ("refunds.create")
    path: str  # its API path (a glob) for the sandbox's faults
    target: str
    run: Callable[[Actor, str], Any]
    made: Callable[[str], int]
    store_matches: Callable[[], bool]
    event_key: Callable[[str], str]  # the key Stripe's events of the faulted call carry
    told_done: Callable[[Any], bool]  # what the service answered says the change is made
    args: dict[str, Any]  # what `run` passes besides the actor, target and key (for tests.crash_helper)


def _events(peer: StripePeer, kind: str, key: str) -> int:
    events = peer.secret_client().v1.events.list(params={"type": kind, "limit": 100}).data
    return sum(1 for e in events if e.request is not None and e.request.idempotency_key == key)


def _refund(peer: StripePeer) -> Arranged:
    charge = make_charge(peer, 4599, description="Order #5678")["id"]

    def run(actor: Actor, key: str) -> Any:
        return billing.issue_refund(actor, charge, REFUND, None, key)

    def made(key: str) -> int:
        return len(peer.secret_client().v1.refunds.list(params={"charge": charge}).data)

    def store_matches() -> bool:
        in_stripe = peer.secret_client().v1.charges.retrieve(charge)
        refunds = {r.id: r.amount for r in peer.secret_client().v1.refunds.list(params={"charge": charge}).data}
        with session_scope() as s:
            stored = s.get(StripeCharge, charge)
            stored_refunds = {
                r.id: r.amount for r in s.exec(select(StripeRefund).where(StripeRefund.charge_id == charge))
            }
        return stored is not None and stored.amount_refunded == in_stripe.amount_refunded and stored_refunds == refunds

    return Arranged(
        "refund",
        "charges.refund",
        "refunds.create",
        "/v1/refunds",
        charge,
        run,
        made,
        store_matches,
        lambda k: k,
        lambda result: (
            (result.amount, result.charge.amount_refunded, len(result.charge.refunds)) == (REFUND, REFUND, 1)
        ),
        {"amount": REFUND},
    )


def _customer(peer: StripePeer) -> Arranged:
    customer = make_customer(peer)

    def run(actor: Actor, key: str) -> Any:
        return customers.update_customer(actor, customer, {"email": NEW_EMAIL}, key)

    def store_matches() -> bool:
        in_stripe = peer.secret_client().v1.customers.retrieve(customer)
        with session_scope() as s:
            stored = s.get(StripeCustomer, customer)
        return stored is not None and stored.email == in_stripe.email == NEW_EMAIL

    return Arranged(
        "customer",
        "customers.update_contact",
        "customers.update",
        "/v1/customers/cus_*",
        customer,
        run,
        lambda key: _events(peer, "customer.updated", key),
        store_matches,
        lambda k: k,
        lambda result: result.stored and result.customer.email == NEW_EMAIL,
        {"changes": {"email": NEW_EMAIL}},
    )


def _subscription(peer: StripePeer) -> Arranged:
    client = peer.secret_client()
    team = client.v1.products.create(params={"name": "Team"})
    prices = [
        client.v1.prices.create(
            params={"product": team.id, "unit_amount": amount, "currency": "usd", "recurring": {"interval": "month"}}
        ).id
        for amount in (4900, 9900)
    ]
    customer = client.v1.customers.create(params={"name": "Jane Smith", "source": "tok_visa"}).id
    subscription = client.v1.subscriptions.create(params={"customer": customer, "items": [{"price": prices[0]}]}).id

    previewed_at = int(time.time())  # the preview's proration date, sent again with every repeat

    def run(actor: Actor, key: str) -> Any:
        return subscription_changes.change_subscription(actor, subscription, prices[1], 2, previewed_at, key)

    def store_matches() -> bool:
        item = client.v1.subscriptions.retrieve(subscription)["items"]["data"][0]
        with session_scope() as s:
            stored = s.exec(
                select(StripeSubscriptionItem).where(StripeSubscriptionItem.subscription_id == subscription)
            )
            items = [(i.price_id, i.quantity) for i in stored]
        return items == [(item["price"]["id"], item["quantity"])] == [(prices[1], 2)]

    return Arranged(
        "subscription",
        "subscriptions.change",
        "subscriptions.update",
        "/v1/subscriptions/sub_*",
        subscription,
        run,
        lambda key: _events(peer, "customer.subscription.updated", key),
        store_matches,
        lambda k: k,
        lambda result: result.stored and result.done.startswith("Changed to Team") and result.status == "active",
        {"price": prices[1], "quantity": 2, "proration_date": previewed_at},
    )


def _invoice(peer: StripePeer) -> Arranged:
    client = peer.secret_client()
    customer = make_customer(peer)
    params = {"customer": customer, "collection_method": "send_invoice", "days_until_due": 10}
    invoice = client.v1.invoices.create(params=params).id
    client.v1.invoice_items.create(
        params={"customer": customer, "invoice": invoice, "amount": 5000, "currency": "usd", "description": "Work"}
    )

    def run(actor: Actor, key: str) -> Any:
        return invoice_changes.send_invoice(actor, invoice, key)

    def store_matches() -> bool:
        in_stripe = client.v1.invoices.retrieve(invoice)
        with session_scope() as s:
            stored = s.get(StripeInvoice, invoice)
        return stored is not None and (stored.status, stored.number) == (in_stripe.status, in_stripe.number) == (
            "open",
            in_stripe.number,
        )

    sent_key = lambda k: invoice_changes.derived_key(k, "send")  # noqa: E731 - the send call's own key
    return Arranged(
        "invoice",
        "invoices.send",
        "invoices.send_invoice",
        "/v1/invoices/in_*/send",
        invoice,
        run,
        lambda key: _events(peer, "invoice.sent", sent_key(key)),
        store_matches,
        sent_key,
        lambda result: result.stored and result.status == "open" and bool(result.number),
        {},
    )


KINDS: dict[str, Callable[[StripePeer], Arranged]] = {
    "refund": _refund,
    "customer": _customer,
    "subscription": _subscription,
    "invoice": _invoice,
}


def arrange(kind: str, owner: Actor, peer: StripePeer) -> Arranged:
    """Connect the demo key, make the kind's object in Stripe and copy everything into the store."""
    stripe_keys.connect_stripe_key(owner, peer.demo_key)
    arranged = KINDS[kind](peer)
    sync_lists()
    return arranged
