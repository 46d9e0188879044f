"""Fill a sandbox with deterministic demo data.

`python -m sandbox.seed --api http://127.0.0.1:8420 [--seed 42] [--customers 50]`

The same seed gives the same customers (names, emails, addresses), charges
(amounts, order numbers, outcomes), refunds and relative dates. Charges spread
over the last 60 days (backdated through the sandbox's /_config/backdate);
most succeed, some fail with expired_card, insufficient_funds or a Radar fraud
block (a few customers fail repeatedly), and some are partly or fully refunded.
The first customer is always Jane Smith (jane.smith@example.com), whose charge
"Order #5678" of $45.99 succeeded. Then products, prices, subscriptions and
invoices over the last ~90 days (`sandbox.seed_billing`). A sandbox that already
has customers is left alone ("already seeded").
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import stripe

from sandbox.seed_billing import seed_billing

SEED_KEY = "sk_test_billysandboxseed"
DAY = 86_400
CHARGE_WINDOW_DAYS = 60

JANE = ("Jane", "Smith")
JANE_ORDER = 5678
JANE_AMOUNT = 4599

# How the seed makes each failure: a test token charged with the customer.
FAILURE_SOURCES = {
    "expired_card": "tok_chargeDeclinedExpiredCard",
    "insufficient_funds": "tok_chargeDeclinedInsufficientFunds",
    "fraud": "tok_radarBlock",
}
CARD_TOKENS = ("tok_visa", "tok_visa", "tok_mastercard", "tok_visa_debit", "tok_discover")
REFUND_REASONS = ("requested_by_customer", "requested_by_customer", "duplicate", "fraudulent")

FIRST_NAMES = (
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Oliver",
    "Sophia",
    "Elijah",
    "Isabella",
    "James",
    "Mia",
    "William",
    "Amelia",
    "Benjamin",
    "Harper",
    "Lucas",
    "Evelyn",
    "Henry",
    "Abigail",
    "Theodore",
    "Emily",
    "Jack",
    "Ella",
    "Levi",
    "Elizabeth",
    "Alexander",
    "Camila",
    "Jackson",
    "Luna",
    "Mateo",
    "Sofia",
    "Daniel",
    "Avery",
    "Michael",
    "Mila",
    "Mason",
    "Aria",
    "Sebastian",
    "Scarlett",
    "Ethan",
    "Penelope",
    "Logan",
    "Layla",
    "Owen",
    "Chloe",
    "Samuel",
    "Victoria",
    "Jacob",
    "Madison",
    "Asher",
    "Eleanor",
    "Aiden",
    "Grace",
    "John",
    "Nora",
    "Joseph",
    "Riley",
    "Wyatt",
    "Zoey",
    "David",
    "Hannah",
    "Leo",
    "Hazel",
    "Luke",
    "Lily",
    "Julian",
    "Ellie",
    "Hudson",
    "Violet",
    "Grayson",
    "Lillian",
    "Matthew",
    "Zoe",
    "Ezra",
    "Stella",
)
LAST_NAMES = (
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
)
STREETS = (
    "Maple Avenue",
    "Oak Street",
    "Cedar Lane",
    "Pine Road",
    "Elm Street",
    "Willow Way",
    "Lakeview Drive",
    "Sunset Boulevard",
    "Highland Avenue",
    "Park Place",
    "Riverside Drive",
    "Washington Street",
    "Lincoln Avenue",
    "Hillcrest Road",
    "Meadow Lane",
    "Church Street",
    "Spring Street",
    "Chestnut Street",
    "Forest Avenue",
    "Main Street",
    "Broadway",
    "Cherry Lane",
)
CITIES = (
    ("Portland", "OR", "972"),
    ("Austin", "TX", "787"),
    ("Denver", "CO", "802"),
    ("Madison", "WI", "537"),
    ("Raleigh", "NC", "276"),
    ("Boise", "ID", "837"),
    ("Columbus", "OH", "432"),
    ("Sacramento", "CA", "958"),
    ("Tucson", "AZ", "857"),
    ("Richmond", "VA", "232"),
    ("Omaha", "NE", "681"),
    ("Albany", "NY", "122"),
    ("Savannah", "GA", "314"),
    ("Burlington", "VT", "054"),
    ("Spokane", "WA", "992"),
    ("Louisville", "KY", "402"),
    ("Tulsa", "OK", "741"),
    ("Providence", "RI", "029"),
)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
PRICE_POINTS = (
    1299,
    1999,
    2499,
    2950,
    3499,
    3999,
    4599,
    4999,
    5900,
    6499,
    7499,
    8999,
    9900,
    12999,
    14999,
    18900,
    24999,
)


@dataclass(frozen=True)
class PlannedCharge:
    amount: int
    order_number: int
    age: int  # seconds before "now"
    outcome: str  # "succeeded" or a FAILURE_SOURCES key
    refund: str | None = None  # "partial" | "full"
    refund_amount: int | None = None
    refund_reason: str | None = None
    refund_age: int | None = None


@dataclass(frozen=True)
class PlannedCustomer:
    name: str
    email: str
    phone: str
    address: dict[str, str]
    card: str
    age: int
    charges: tuple[PlannedCharge, ...]


def _people(rng: random.Random, count: int) -> list[tuple[str, str]]:
    people = [JANE]
    seen = {JANE}
    while len(people) < count:
        person = (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
        if person not in seen:
            seen.add(person)
            people.append(person)
    return people


def _address(rng: random.Random) -> dict[str, str]:
    city, state, zip_prefix = rng.choice(CITIES)
    return {
        "line1": f"{rng.randint(10, 9899)} {rng.choice(STREETS)}",
        "city": city,
        "state": state,
        "postal_code": f"{zip_prefix}{rng.randint(0, 99):02d}",
        "country": "US",
    }


def _outcomes(rng: random.Random, count: int, repeat: str | None) -> list[str]:
    """Mostly successes; a repeat offender fails two or three times in a row."""
    outcomes = []
    for _ in range(count):
        if rng.random() < 0.08:
            outcomes.append(rng.choice(tuple(FAILURE_SOURCES)))
        else:
            outcomes.append("succeeded")
    if repeat is not None:
        streak = min(count - 1, rng.randint(2, 3))
        start = rng.randint(0, count - streak)
        outcomes[start : start + streak] = [repeat] * streak
    return outcomes


def _with_refund(rng: random.Random, charge: PlannedCharge, kind: str) -> PlannedCharge:
    amount = charge.amount if kind == "full" else max(50, round(charge.amount * rng.uniform(0.2, 0.7)))
    delay = rng.randint(2 * 3600, 6 * DAY)
    return PlannedCharge(
        charge.amount,
        charge.order_number,
        charge.age,
        charge.outcome,
        refund=kind,
        refund_amount=amount,
        refund_reason=rng.choice(REFUND_REASONS),
        refund_age=max(60, charge.age - delay),
    )


# Names are unique first/last pairs and order numbers four digits: past this many customers
# the demo would run out of one or the other.
MAX_CUSTOMERS = 2000


def plan(seed: int = 42, customers: int = 50) -> list[PlannedCustomer]:
    """The demo data as plain values: the same for the same seed."""
    if customers > MAX_CUSTOMERS:
        raise ValueError(
            f"The demo seeder makes at most {MAX_CUSTOMERS} customers (unique names, four-digit order numbers)."
        )
    rng = random.Random(seed)
    count = max(1, customers)
    people = _people(rng, count)
    charge_counts = [rng.randint(2, 6) for _ in people]
    order_numbers = iter(rng.sample([n for n in range(1000, 10000) if n != JANE_ORDER], sum(charge_counts)))
    repeaters = dict(zip(rng.sample(range(1, count), min(3, count - 1)), FAILURE_SOURCES, strict=False))
    planned: list[PlannedCustomer] = []
    emails: Counter[str] = Counter()
    for index, ((first, last), n_charges) in enumerate(zip(people, charge_counts, strict=True)):
        outcomes = ["succeeded"] * n_charges if index == 0 else _outcomes(rng, n_charges, repeaters.get(index))
        ages = sorted(
            (rng.randint(3600, CHARGE_WINDOW_DAYS * DAY - 3600) for _ in outcomes),
            reverse=True,
        )
        charges = [
            PlannedCharge(rng.choice(PRICE_POINTS), next(order_numbers), age, outcome)
            for age, outcome in zip(ages, outcomes, strict=True)
        ]
        if index == 0:
            charges[-1] = PlannedCharge(JANE_AMOUNT, JANE_ORDER, charges[-1].age, "succeeded")
        else:
            charges = [
                _with_refund(rng, c, rng.choice(("partial", "full")))
                if c.outcome == "succeeded" and rng.random() < 0.1
                else c
                for c in charges
            ]
        local = f"{first}.{last}".lower()
        emails[local] += 1
        suffix = "" if emails[local] == 1 else str(emails[local])
        domain = "example.com" if index == 0 else rng.choice(EMAIL_DOMAINS)
        planned.append(
            PlannedCustomer(
                name=f"{first} {last}",
                email=f"{local}{suffix}@{domain}",
                phone=f"+1555{rng.randint(1000000, 9999999)}",
                address=_address(rng),
                card=rng.choice(CARD_TOKENS),
                age=ages[0] + rng.randint(3600, 10 * DAY),
                charges=tuple(charges),
            )
        )
    return _ensure_variety(rng, planned)


def _ensure_variety(rng: random.Random, planned: list[PlannedCustomer]) -> list[PlannedCustomer]:
    """Guarantee each failure reason and both refund kinds appear at least twice."""
    wanted = [*FAILURE_SOURCES, *FAILURE_SOURCES, "partial", "partial", "full", "full"]
    present = Counter(c.refund or c.outcome for customer in planned for c in customer.charges)
    for kind in wanted:
        if present[kind] >= wanted.count(kind):
            continue
        for ci, customer in enumerate(planned[1:], start=1):
            spots = [i for i, c in enumerate(customer.charges) if c.outcome == "succeeded" and c.refund is None]
            if len(spots) < 2:  # keep at least one clean success per customer
                continue
            charges = list(customer.charges)
            old = charges[spots[0]]
            charges[spots[0]] = (
                _with_refund(rng, old, kind)
                if kind in ("partial", "full")
                else PlannedCharge(old.amount, old.order_number, old.age, kind)
            )
            planned[ci] = PlannedCustomer(
                customer.name,
                customer.email,
                customer.phone,
                customer.address,
                customer.card,
                customer.age,
                tuple(charges),
            )
            present[kind] += 1
            break
    return planned


def _backdate(client: stripe.StripeClient, object_id: str, created: int) -> None:
    """The sandbox's /_config/backdate (real Stripe has no such endpoint)."""
    client.raw_request("post", "/_config/backdate", id=object_id, created=created)


def _create_charge(client: stripe.StripeClient, params: dict[str, Any]) -> str:
    try:
        return client.v1.charges.create(params=params).id
    except stripe.CardError as exc:  # the failed charge exists; its id is in the error
        body = exc.json_body or {}
        return str(body["error"]["charge"])


def seed(api_url: str, seed: int = 42, customers: int = 50, now: int | None = None) -> dict[str, Any]:
    """Create the demo data in the sandbox at `api_url`; return what was made."""
    api_url = api_url.rstrip("/")
    client = stripe.StripeClient(SEED_KEY, base_addresses={"api": api_url}, max_network_retries=2)
    if client.v1.customers.list(params={"limit": 1}).data:
        return {"already_seeded": True}
    now = int(time.time()) if now is None else now
    summary: Counter[str] = Counter()
    jane: dict[str, str] = {}
    customer_ids: list[str] = []
    for index, person in enumerate(plan(seed, customers)):
        customer = client.v1.customers.create(
            params={
                "name": person.name,
                "email": person.email,
                "phone": person.phone,
                "address": person.address,
                "source": person.card,
                "metadata": {"seeded": "true"},
            }
        )
        _backdate(client, customer.id, now - person.age)
        customer_ids.append(customer.id)
        summary["customers"] += 1
        for planned in person.charges:
            params: dict[str, Any] = {
                "amount": planned.amount,
                "currency": "usd",
                "customer": customer.id,
                "description": f"Order #{planned.order_number}",
                "metadata": {"order_number": str(planned.order_number)},
            }
            if planned.outcome != "succeeded":
                params["source"] = FAILURE_SOURCES[planned.outcome]
            charge_id = _create_charge(client, params)
            _backdate(client, charge_id, now - planned.age)
            summary["charges"] += 1
            summary[planned.outcome] += 1
            if index == 0 and planned.order_number == JANE_ORDER:
                jane = {"customer": customer.id, "charge": charge_id}
            if planned.refund is not None:
                refund = client.v1.refunds.create(
                    params={
                        "charge": charge_id,
                        "amount": planned.refund_amount,
                        "reason": planned.refund_reason,
                        "metadata": {"seeded": "true"},
                    }
                )
                _backdate(client, refund.id, now - (planned.refund_age or 0))
                summary[f"{planned.refund}_refunds"] += 1
    seed_billing(client, seed, customer_ids, now, summary)
    return {"already_seeded": False, **dict(summary), "jane_smith": jane}


def reset_to_demo(api_url: str, customers: int = 50) -> None:
    """Empty the sandbox and give it the demo data: seeded the first time, then restored from a
    snapshot the sandbox keeps in memory (milliseconds instead of seconds, for test suites)."""
    from sandbox.server import empty_sandbox, restore_snapshot, take_snapshot

    name = f"demo-{customers}"
    if restore_snapshot(api_url, name):
        return
    empty_sandbox(api_url)
    seed(api_url, customers=customers)
    take_snapshot(api_url, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.seed", description=__doc__.split("\n")[0])
    parser.add_argument("--api", default="http://127.0.0.1:8420", help="sandbox URL")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--customers", type=int, default=50)
    args = parser.parse_args(argv)
    started = time.monotonic()
    summary = seed(args.api, seed=args.seed, customers=args.customers)
    if summary["already_seeded"]:
        print(f"demo data: already in the sandbox at {args.api}", flush=True)
        return 0
    took = time.monotonic() - started
    print(
        f"demo data: seeded {summary['customers']} customers and {summary['charges']} charges "
        f"in {took:.1f}s: {json.dumps(summary, sort_keys=True)}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
