"""Named snapshots: a test suite seeds once and restores the same arrangement in milliseconds."""

from __future__ import annotations

import stripe

from sandbox import SandboxHandle
from sandbox.seed import reset_to_demo
from tests.sandbox.helpers import charge, make_client


def test_restoring_undoes_every_change_made_after_the_snapshot(sandbox: SandboxHandle) -> None:
    client = make_client(sandbox)
    kept = client.v1.customers.create(params={"name": "Kept", "source": "tok_visa"})
    paid = charge(client, kept.id, amount=700)
    key = sandbox.create_restricted_key(profile="full")
    sandbox.snapshot("arranged")

    client.v1.refunds.create(params={"charge": paid.id, "amount": 200})
    client.v1.customers.update(kept.id, params={"name": "Changed"})
    later = client.v1.customers.create(params={"name": "Later"})
    sandbox.reset()  # emptying keeps the snapshots
    assert sandbox.restore("arranged") is True

    assert client.v1.customers.retrieve(kept.id).name == "Kept"
    assert client.v1.charges.retrieve(paid.id).amount_refunded == 0
    assert [c.id for c in client.v1.customers.list().data] == [kept.id]  # the index was rebuilt too
    try:
        client.v1.customers.retrieve(later.id)
        raise AssertionError("a customer made after the snapshot came back")
    except stripe.InvalidRequestError as exc:
        assert exc.http_status == 404
    assert make_client(sandbox, key).v1.customers.retrieve(kept.id).id == kept.id  # keys come back

    # What the test changes after a restore never reaches the saved copy.
    client.v1.customers.update(kept.id, params={"name": "Changed again"})
    assert sandbox.restore("arranged") is True
    assert client.v1.customers.retrieve(kept.id).name == "Kept"


def test_an_unknown_snapshot_is_reported_not_guessed(sandbox: SandboxHandle) -> None:
    assert sandbox.restore("never-taken") is False


def test_reset_to_demo_gives_the_same_data_as_a_fresh_seed(sandbox: SandboxHandle) -> None:
    client = make_client(sandbox)
    reset_to_demo(sandbox.url, customers=5)
    first = sorted((c.id, c.email) for c in client.v1.customers.list(params={"limit": 100}).data)
    client.v1.customers.create(params={"name": "Extra"})
    reset_to_demo(sandbox.url, customers=5)  # restored, not seeded again
    again = sorted((c.id, c.email) for c in client.v1.customers.list(params={"limit": 100}).data)
    assert again == first and len(first) == 5


def test_a_restore_keeps_the_receivers_registered_since(sandbox: SandboxHandle) -> None:
    sandbox.snapshot("before-receiver")
    sandbox.register_webhook("we_receiver", "http://127.0.0.1:9/hook", "whsec_test")
    try:
        sandbox.restore("before-receiver")
        from localstripe import webhooks

        assert "we_receiver" in webhooks._webhooks  # the sandbox runs in this process's thread
    finally:
        sandbox.delete_webhook("we_receiver")
