"""Lists: newest first from the indexes, Stripe's pagination and filters."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
import stripe

from sandbox.indexes import StoreIndex
from tests.sandbox.helpers import charge, ids, raw_json


def make_customers(client: stripe.StripeClient, count: int) -> list[str]:
    return [client.v1.customers.create(params={"name": f"C{i}"}).id for i in range(count)]


def test_customers_newest_first_with_cursors(client: stripe.StripeClient) -> None:
    made = make_customers(client, 7)
    newest_first = list(reversed(made))
    page = client.v1.customers.list(params={"limit": 3})
    assert ids(page) == newest_first[:3] and page.has_more
    page = client.v1.customers.list(params={"limit": 3, "starting_after": newest_first[2]})
    assert ids(page) == newest_first[3:6] and page.has_more
    page = client.v1.customers.list(params={"limit": 3, "starting_after": newest_first[5]})
    assert ids(page) == newest_first[6:] and not page.has_more
    page = client.v1.customers.list(params={"limit": 2, "ending_before": newest_first[4]})
    assert ids(page) == newest_first[2:4] and page.has_more
    page = client.v1.customers.list(params={"limit": 5, "ending_before": newest_first[2]})
    assert ids(page) == newest_first[:2] and not page.has_more
    assert ids(client.v1.customers.list()) == newest_first


def test_auto_paging_walks_everything_once(client: stripe.StripeClient) -> None:
    made = make_customers(client, 25)
    walked = [c.id for c in client.v1.customers.list(params={"limit": 4}).auto_paging_iter()]
    assert walked == list(reversed(made))


@pytest.mark.parametrize("cursor", ["starting_after", "ending_before"])
def test_unknown_cursor_is_an_error(client: stripe.StripeClient, cursor: str) -> None:
    make_customers(client, 2)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.list(params={cursor: "cus_doesnotexist"})
    error = caught.value.json_body["error"]
    assert (error["code"], error["param"]) == ("resource_missing", cursor)
    assert error["message"] == "No such customer: 'cus_doesnotexist'"


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (0, "This value must be greater than or equal to 1."),
        (101, "This value must be less than or equal to 100."),
        ("lots", "Invalid integer: lots"),
    ],
)
def test_limit_is_validated(client: stripe.StripeClient, limit: Any, message: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.charges.list(params={"limit": limit})
    assert caught.value.user_message == message and caught.value.param == "limit"


def test_unknown_filter_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.list(params={"colour": "red"})
    assert caught.value.user_message == "Received unknown parameter: colour"


def test_charges_by_customer_and_created(client: stripe.StripeClient, sandbox: Any) -> None:
    alice = client.v1.customers.create(params={"source": "tok_visa"})
    bob = client.v1.customers.create(params={"source": "tok_mastercard"})
    a1, b1, a2 = (charge(client, c.id) for c in (alice, bob, alice))
    assert ids(client.v1.charges.list(params={"customer": alice.id})) == [a2.id, a1.id]
    assert ids(client.v1.charges.list(params={"customer": bob.id})) == [b1.id]
    page = client.v1.charges.list(params={"customer": alice.id, "starting_after": b1.id})
    assert ids(page) == [a1.id]  # a cursor from outside the filter still marks a position
    now = int(time.time())
    sandbox.backdate(a1.id, now - 3 * 86400)
    sandbox.backdate(b1.id, now - 2 * 86400)
    recent = client.v1.charges.list(params={"created": {"gte": now - 2 * 86400}})
    assert ids(recent) == [a2.id, b1.id]
    older = client.v1.charges.list(params={"created": {"lt": now - 2 * 86400}})
    assert ids(older) == [a1.id]
    exact = client.v1.charges.list(params={"created": now - 3 * 86400})
    assert ids(exact) == [a1.id]


def test_payment_intents_list(client: stripe.StripeClient, customer: Any) -> None:
    made = [
        client.v1.payment_intents.create(params={"amount": 1000 + i, "currency": "usd", "customer": customer.id}).id
        for i in range(3)
    ]
    assert ids(client.v1.payment_intents.list()) == list(reversed(made))
    assert ids(client.v1.payment_intents.list(params={"customer": customer.id, "limit": 1})) == made[-1:]


def test_subscriptions_and_invoices_lists(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Plan"})
    plan = client.v1.plans.create(
        params={"amount": 2000, "currency": "usd", "interval": "month", "product": product.id}
    )
    people = [client.v1.customers.create(params={"source": "tok_visa"}) for _ in range(2)]
    subs = [client.v1.subscriptions.create(params={"customer": p.id, "items": [{"plan": plan.id}]}) for p in people]
    assert ids(client.v1.subscriptions.list()) == [subs[1].id, subs[0].id]
    assert ids(client.v1.subscriptions.list(params={"customer": people[0].id})) == [subs[0].id]
    invoices = client.v1.invoices.list()
    assert [i.subscription for i in invoices.data] == [subs[1].id, subs[0].id]
    mine = client.v1.invoices.list(params={"customer": people[0].id})
    assert [i.customer for i in mine.data] == [people[0].id]
    prices = client.v1.prices.list()
    assert ids(prices) == [plan.id] and prices.data[0].unit_amount == 2000
    assert client.v1.prices.retrieve(plan.id).recurring.interval == "month"


def test_disputes_and_customer_payment_methods(client: stripe.StripeClient, customer: Any) -> None:
    assert client.v1.disputes.list().data == []
    methods = raw_json(client, "get", f"/v1/customers/{customer.id}/payment_methods")
    assert [m["card"]["last4"] for m in methods["data"]] == ["4242"]
    assert methods["data"][0]["id"] == customer.default_source


def test_paging_through_many_charges(client: stripe.StripeClient, customer: Any) -> None:
    made = [charge(client, customer.id).id for _ in range(250)]
    walked: list[str] = []
    params: dict[str, Any] = {"limit": 100, "customer": customer.id}
    while True:
        page = client.v1.charges.list(params=params)
        walked += ids(page)
        if not page.has_more:
            break
        params["starting_after"] = walked[-1]
    assert walked == list(reversed(made))


class Fake:
    def __init__(self, object_id: str, created: int, customer: str | None = None) -> None:
        self.id, self.created, self.customer = object_id, created, customer


def test_index_matches_a_full_scan_and_stays_fast() -> None:
    store: dict[str, Any] = {}
    index = StoreIndex(store)
    for n in range(30_000):
        kind = ("customer", "charge", "event")[n % 3]
        obj = Fake(f"{kind[:2]}_{n}", 1_700_000_000 + n // 7, customer=f"cus_{n % 50}")
        store[f"{kind}:{obj.id}"] = obj
        index.on_set(f"{kind}:{obj.id}", obj)

    def scan(kind: str, customer: str) -> list[str]:
        rows = [
            (o.created, seq, o.id)
            for seq, (key, o) in enumerate(store.items())
            if key.startswith(kind + ":") and o.customer == customer
        ]
        return [object_id for *_, object_id in sorted(rows, reverse=True)]

    assert [o.id for o in index.objects("charge", "customer", "cus_7")] == scan("charge", "cus_7")
    started = time.perf_counter()
    for n in range(200):
        page = list(itertools.islice(index.objects("charge", "customer", f"cus_{n % 50}"), 100))
        assert len(page) == 100
    assert time.perf_counter() - started < 1.0


def test_list_expand(client: stripe.StripeClient, customer: Any) -> None:
    charge(client, customer.id)
    page = client.v1.charges.list(params={"expand": ["data.customer"]})
    assert page.data[0].customer.email == "test@example.com"


def test_answers_are_written_as_stripe_writes_them(client: stripe.StripeClient) -> None:
    """Two-space indent, keys sorted, a final newline, UTF-8 text kept whole: what a developer
    reading the sandbox with curl sees from Stripe too (sandbox/responses.py makes every answer,
    localstripe's own routes included)."""
    made = client.v1.customers.create(params={"name": "Zoë Ünïcode", "metadata": {"b": "2", "a": "1"}})
    created = client.raw_request("get", f"/v1/customers/{made.id}")  # a localstripe route
    listed = client.raw_request("get", "/v1/customers", limit=1)  # one of the sandbox's own
    for answer in (created, listed):
        body = answer.body
        assert body.startswith('{\n  "') and body.endswith("}\n")
        keys = [line.split('"')[1] for line in body.splitlines() if line.startswith('  "')]
        assert keys == sorted(keys)
        assert answer.headers["Content-Type"].startswith("application/json")
    assert '"Zoë Ünïcode"' in created.body
    assert created.body.index('"a": "1"') < created.body.index('"b": "2"')
