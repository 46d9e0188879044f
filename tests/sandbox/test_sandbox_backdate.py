"""Backdating (sandbox only): lists re-sort, the creation events move along."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

from sandbox import SandboxHandle
from sandbox.server import SandboxRequestError
from tests.sandbox.helpers import charge, ids


def test_backdated_objects_sort_by_created(sandbox: SandboxHandle, client: stripe.StripeClient, customer: Any) -> None:
    first, second, third = (charge(client, customer.id) for _ in range(3))
    now = int(time.time())
    sandbox.backdate(third.id, now - 10 * 86400)
    sandbox.backdate(first.id, now - 5 * 86400)
    assert client.v1.charges.retrieve(third.id).created == now - 10 * 86400
    assert ids(client.v1.charges.list()) == [second.id, first.id, third.id]
    assert ids(client.v1.charges.list(params={"customer": customer.id})) == [
        second.id,
        first.id,
        third.id,
    ]
    page = client.v1.charges.list(params={"starting_after": first.id})
    assert ids(page) == [third.id]


def test_ties_keep_insertion_order(sandbox: SandboxHandle, client: stripe.StripeClient, customer: Any) -> None:
    made = [charge(client, customer.id) for _ in range(3)]
    moment = int(time.time()) - 3600
    for paid in reversed(made):
        sandbox.backdate(paid.id, moment)
    assert ids(client.v1.charges.list()) == [made[2].id, made[1].id, made[0].id]


def test_charge_events_move_with_the_charge(sandbox: SandboxHandle, client: stripe.StripeClient, customer: Any) -> None:
    paid = charge(client, customer.id)
    with pytest.raises(stripe.CardError) as caught:
        charge(client, customer.id, source="tok_chargeDeclinedExpiredCard")
    failed_id = caught.value.json_body["error"]["charge"]
    then = int(time.time()) - 20 * 86400
    sandbox.backdate(paid.id, then)
    sandbox.backdate(failed_id, then - 60)
    refund = client.v1.refunds.create(params={"charge": paid.id, "amount": 100})
    sandbox.backdate(refund.id, then + 3600)
    events = {e.type: e for e in client.v1.events.list(params={"limit": 100}).data}
    assert events["charge.succeeded"].created == then
    assert events["charge.succeeded"].data.object.created == then
    assert events["charge.failed"].created == then - 60
    assert events["refund.created"].created == then + 3600
    assert events["charge.refunded"].created == then + 3600
    assert events["customer.created"].created > then
    old_first = client.v1.events.list(params={"created": {"lte": then + 3600}, "limit": 100})
    assert [e.type for e in old_first.data] == [
        "refund.created",
        "charge.refunded",
        "charge.succeeded",
        "charge.failed",
    ]


def test_backdating_an_unknown_id_is_resource_missing(sandbox: SandboxHandle) -> None:
    with pytest.raises(SandboxRequestError) as caught:
        sandbox.backdate("ch_nothing", 1_700_000_000)
    assert caught.value.status == 404
