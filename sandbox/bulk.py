"""POST /_config/generate: a large account made inside the sandbox (sandbox only).

The demo seeder (`sandbox.seed`) goes through the API, about ten requests per customer, and
stops at 2,000 customers (unique names, four-digit order numbers). A benchmark of a sync "at
Stripe scale" needs 100,000 customers and their charges: made here, in the sandbox's own
process, by the same constructors the API calls (so ids, indexes, events and exports are the
same as for objects made through the API), without an HTTP round trip per object.

Body: `{"customers": 1000, "seed": 42, "days": 365, "offset": 0}`. Customer number
`offset + i` is drawn from its own random stream, so an account made in chunks (the bench
asks for 1,000 at a time to show progress) is the same as one made in one call. Customers
join over `days` days, more of them recently (the density grows linearly, as a growing
business's does: a sync that splits lists into `created` ranges meets uneven ranges). Each
has a saved card and 2-6 charges between joining and now; about 5 % of charges are declined
and about 10 % of the successful ones are refunded, part or whole.

Webhook deliveries are not scheduled while generating when no webhook is registered
(hundreds of thousands of events would each start a delivery task that finds no receiver).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from localstripe import resources, webhooks
from localstripe.errors import UserError
from localstripe.resources import Charge, Customer

from sandbox import refunds, timeline
from sandbox.errors import invalid_request
from sandbox.params import bounded_int, read_json_or_form

DAY = 86_400
MAX_PER_CALL = 20_000
DECLINE_TOKEN = "tok_chargeDeclinedInsufficientFunds"


@contextlib.contextmanager
def _no_idle_deliveries() -> Iterator[None]:
    """Skip scheduling webhook deliveries while no webhook is registered."""
    original = webhooks.schedule_webhook
    if webhooks._webhooks:
        yield
        return

    def schedule_nothing(event: Any) -> None:
        return None

    webhooks.schedule_webhook = schedule_nothing
    resources.schedule_webhook = schedule_nothing
    try:
        yield
    finally:
        webhooks.schedule_webhook = original
        resources.schedule_webhook = original


def _customer(number: int, seed: int, start: int, now: int, summary: Counter[str]) -> None:
    # Imported here, not at the top: the sandbox package loads this module, and `python -m
    # sandbox.seed` must find sandbox.seed not yet imported (runpy warns otherwise).
    from sandbox.seed import CARD_TOKENS, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, PRICE_POINTS, REFUND_REASONS

    rng = random.Random(seed * 1_000_003 + number)
    joined = start + int((now - start) * rng.random() ** 0.5)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    with timeline.at(joined):
        customer = Customer._api_create(
            name=f"{first} {last}",
            email=f"{first}.{last}.{number}@{rng.choice(EMAIL_DOMAINS)}".lower(),
            phone=f"+1555{rng.randint(1000000, 9999999)}",
            source=rng.choice(CARD_TOKENS),
            metadata={"generated": "true"},
        )
    summary["customers"] += 1
    for moment in sorted(rng.randint(joined, now) for _ in range(rng.randint(2, 6))):
        declined = rng.random() < 0.05
        params: dict[str, Any] = {
            "amount": rng.choice(PRICE_POINTS),
            "currency": "usd",
            "customer": customer.id,
            "description": f"Order #{number}-{summary['charges']}",
        }
        if declined:
            params["source"] = DECLINE_TOKEN
        with timeline.at(moment):
            try:
                charge = Charge._api_create(**params)
            except UserError:  # the declined charge exists; Stripe answers 402
                summary["declined"] += 1
                summary["charges"] += 1
                continue
        summary["charges"] += 1
        if rng.random() < 0.1:
            part = rng.random() < 0.5
            amount = max(50, charge.amount * rng.randint(20, 70) // 100) if part else None
            with timeline.at(min(now, moment + rng.randint(3600, 6 * DAY))):
                body: dict[str, Any] = {"charge": charge.id, "reason": rng.choice(REFUND_REASONS)}
                if amount is not None:
                    body["amount"] = amount
                refunds.create_refund(body)
            summary["refunds"] += 1


def generate(
    customers: int, seed: int = 42, days: int = 365, offset: int = 0, now: int | None = None
) -> dict[str, int]:
    """Make customers number `offset` … `offset + customers - 1` with their cards, charges and refunds."""
    now = int(time.time()) if now is None else now
    start = now - days * DAY
    summary: Counter[str] = Counter()
    with _no_idle_deliveries():
        for number in range(offset, offset + customers):
            _customer(number, seed, start, now, summary)
    return dict(summary)


async def generate_route(request: web.Request) -> web.Response:
    body = await read_json_or_form(request)
    if "customers" not in body:
        raise invalid_request('Send {"customers": <how many>, "seed": 42, "days": 365, "offset": 0}.')
    started = time.monotonic()
    made = generate(
        bounded_int("customers", body["customers"], 1, MAX_PER_CALL),
        seed=bounded_int("seed", body.get("seed", 42), 0),
        days=bounded_int("days", body.get("days", 365), 1, 20 * 365),
        offset=bounded_int("offset", body.get("offset", 0), 0),
        now=bounded_int("now", body["now"], 0) if "now" in body else None,
    )
    return web.json_response({**made, "seconds": round(time.monotonic() - started, 3)})


def routes() -> list[tuple[str, str, Any]]:
    return [("POST", "/_config/generate", generate_route)]
