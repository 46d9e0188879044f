"""Demo billing data for the seed: products, prices, subscriptions and invoices.

Everything goes through the public API plus `/_config/backdate`, which moves a
subscription's or invoice's whole history back and replays the renewals that
fall between its new start and now (see sandbox/README.md). The same seed gives
the same products, prices, amounts, statuses and dates relative to `now`.

Made, over the last ~90 days, on customers other than Jane Smith:

* products Starter, Team and Business with a monthly and a yearly price each, an
  "Extra seat" add-on (monthly, several per subscription) and a one-time
  "Onboarding" price;
* subscriptions that are active (some with two items, some yearly), trialing,
  set to cancel at the period end, canceled, past_due (the renewal's card was
  declined: an open invoice whose payment failed) and unpaid (two renewals in a
  row declined);
* one-off invoices (`send_invoice`): paid (by card or out of band), open and not
  yet due, open and overdue, void, uncollectible, and one draft.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import stripe

DAY = 86_400
FAILING_CARD = "tok_chargeCustomerFail"  # attaches, then every charge is declined

PLANS = (("Starter", 1900), ("Team", 4900), ("Business", 19900))
SEAT_PRICE = 800
ONBOARDING_PRICE = 25000
SERVICES = (
    ("Onboarding workshop", 45000),
    ("Custom report setup", 18000),
    ("Data migration", 60000),
    ("Priority support, quarterly", 30000),
    ("Integration consulting (4 h)", 72000),
    ("Training session", 24000),
)
# (kind, how many): the order is the order of creation.
SUBSCRIPTION_KINDS = (
    ("active", 5),
    ("trialing", 2),
    ("cancel_at_period_end", 1),
    ("canceled", 2),
    ("past_due", 2),
    ("unpaid", 1),
)
INVOICE_KINDS = (
    ("paid", 2),
    ("paid_out_of_band", 1),
    ("open", 2),
    ("overdue", 2),
    ("void", 1),
    ("uncollectible", 1),
    ("draft", 1),
)


def _backdate(client: stripe.StripeClient, object_id: str, created: int) -> None:
    client.raw_request("post", "/_config/backdate", id=object_id, created=created)


def _catalog(client: stripe.StripeClient) -> dict[str, Any]:
    prices: dict[str, Any] = {}
    for name, monthly in PLANS:
        product = client.v1.products.create(params={"name": f"Billy {name}", "metadata": {"seeded": "true"}})
        prices[f"{name}/month"] = client.v1.prices.create(
            params={
                "product": product.id,
                "unit_amount": monthly,
                "currency": "usd",
                "recurring": {"interval": "month"},
                "lookup_key": f"{name.lower()}_monthly",
                "nickname": f"{name} monthly",
            }
        )
        prices[f"{name}/year"] = client.v1.prices.create(
            params={
                "product": product.id,
                "unit_amount": monthly * 10,
                "currency": "usd",
                "recurring": {"interval": "year"},
                "lookup_key": f"{name.lower()}_yearly",
                "nickname": f"{name} yearly",
            }
        )
    seat = client.v1.products.create(params={"name": "Extra seat", "metadata": {"seeded": "true"}})
    prices["seat"] = client.v1.prices.create(
        params={"product": seat.id, "unit_amount": SEAT_PRICE, "currency": "usd", "recurring": {"interval": "month"}}
    )
    onboarding = client.v1.products.create(params={"name": "Onboarding", "metadata": {"seeded": "true"}})
    prices["onboarding"] = client.v1.prices.create(
        params={"product": onboarding.id, "unit_amount": ONBOARDING_PRICE, "currency": "usd"}
    )
    return prices


def _pickers(rng: random.Random, customers: list[str]) -> tuple[list[str], list[str]]:
    """Customers for good-card billing, and separate ones whose card will be declined."""
    others = customers[1:] or customers[:1]  # never Jane Smith, unless she is alone
    order = rng.sample(others, len(others))
    failing_count = min(3, max(1, len(order) // 4))
    failing = order[:failing_count] if len(order) > failing_count else order[:1]
    good = order[failing_count:] if len(order) > failing_count else order
    return good, failing


def _subscription_plan(rng: random.Random, kind: str) -> tuple[list[dict[str, Any]], int]:
    name = rng.choice([p[0] for p in PLANS])
    interval = "year" if kind == "active" and rng.random() < 0.3 else "month"
    items: list[dict[str, Any]] = [{"price": f"{name}/{interval}"}]
    if interval == "month" and rng.random() < 0.4:
        items.append({"price": "seat", "quantity": rng.randint(2, 6)})
    ages = {
        "active": (5, 88),
        "trialing": (1, 9),
        "cancel_at_period_end": (8, 25),
        "canceled": (40, 88),
        "past_due": (33, 52),
        "unpaid": (63, 78),
    }
    low, high = ages[kind]
    return items, rng.randint(low, high)


def _make_subscriptions(
    client: stripe.StripeClient,
    rng: random.Random,
    prices: dict[str, Any],
    good: list[str],
    failing: list[str],
    now: int,
    summary: Counter[str],
) -> None:
    swapped: set[str] = set()
    n_good = n_failing = 0
    for kind, count in SUBSCRIPTION_KINDS:
        for _ in range(count):
            items, age = _subscription_plan(rng, kind)
            if kind in ("past_due", "unpaid"):
                customer = failing[n_failing % len(failing)]
                n_failing += 1
            else:
                customer = good[n_good % len(good)]
                n_good += 1
            params: dict[str, Any] = {
                "customer": customer,
                "items": [{**item, "price": prices[item["price"]].id} for item in items],
                "metadata": {"seeded": "true"},
            }
            if kind == "trialing":
                params["trial_period_days"] = rng.choice((14, 30))
            sub = client.v1.subscriptions.create(params=params)
            if kind == "canceled":
                ended_ago = rng.randint(3, age - 20)
                client.v1.subscriptions.update(
                    sub.id,
                    params={
                        "cancel_at": sub.created + (age - ended_ago) * DAY,
                        "cancellation_details": {"feedback": rng.choice(("too_expensive", "switched_service"))},
                    },
                )
            if kind in ("past_due", "unpaid") and customer not in swapped:
                card = client.v1.customers.payment_sources.create(customer, params={"source": FAILING_CARD})
                client.v1.customers.update(customer, params={"default_source": card.id})
                swapped.add(customer)
            _backdate(client, sub.id, now - age * DAY)
            if kind == "cancel_at_period_end":
                client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
            summary["subscriptions"] += 1


def _make_invoices(
    client: stripe.StripeClient,
    rng: random.Random,
    prices: dict[str, Any],
    good: list[str],
    now: int,
    summary: Counter[str],
) -> None:
    n = 0
    for kind, count in INVOICE_KINDS:
        for _ in range(count):
            customer = good[n % len(good)]
            n += 1
            days_until_due = rng.choice((14, 30))
            ages = {
                "paid": (10, 88),
                "paid_out_of_band": (20, 70),
                "open": (1, days_until_due - 3),
                "overdue": (days_until_due + 5, days_until_due + 45),
                "void": (15, 60),
                "uncollectible": (60, 88),
                "draft": (0, 0),
            }
            age = rng.randint(*ages[kind])
            invoice = client.v1.invoices.create(
                params={
                    "customer": customer,
                    "collection_method": "send_invoice",
                    "days_until_due": days_until_due,
                    "description": "Thank you for your business.",
                    "metadata": {"seeded": "true"},
                }
            )
            for description, amount in rng.sample(SERVICES, rng.randint(1, 2)):
                client.v1.invoice_items.create(
                    params={
                        "customer": customer,
                        "invoice": invoice.id,
                        "amount": amount,
                        "currency": "usd",
                        "description": description,
                    }
                )
            if rng.random() < 0.3:
                client.v1.invoice_items.create(
                    params={"customer": customer, "invoice": invoice.id, "pricing": {"price": prices["onboarding"].id}}
                )
            if kind != "draft":
                client.v1.invoices.send_invoice(invoice.id)
            if kind == "paid":
                client.v1.invoices.pay(invoice.id)
            elif kind == "paid_out_of_band":
                client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
            elif kind == "void":
                client.v1.invoices.void_invoice(invoice.id)
            elif kind == "uncollectible":
                client.v1.invoices.mark_uncollectible(invoice.id)
            _backdate(client, invoice.id, now - age * DAY - 3600)
            summary["one_off_invoices"] += 1


def seed_billing(client: stripe.StripeClient, seed: int, customers: list[str], now: int, summary: Counter[str]) -> None:
    """Create the catalog, subscriptions and invoices for the seeded customers."""
    rng = random.Random(f"billing-{seed}")
    prices = _catalog(client)
    summary["prices"] += len(prices)
    good, failing = _pickers(rng, customers)
    _make_subscriptions(client, rng, prices, good, failing, now, summary)
    _make_invoices(client, rng, prices, good, now, summary)
    for sub in client.v1.subscriptions.list(params={"status": "all", "limit": 100}).auto_paging_iter():
        summary[f"subscriptions_{sub.status}"] += 1
    for invoice in client.v1.invoices.list(params={"limit": 100}).auto_paging_iter():
        summary[f"invoices_{invoice.status}"] += 1
