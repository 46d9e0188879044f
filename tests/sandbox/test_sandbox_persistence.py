"""Persistence: memory only by default; --data-dir saves, debounced, and reloads."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import stripe

from sandbox import SandboxHandle, run_in_process
from tests.sandbox.helpers import SECRET_KEY

LOCALSTRIPE_FILE = Path("/tmp/localstripe.pickle")


def client_for(handle: SandboxHandle) -> stripe.StripeClient:
    return handle.client(SECRET_KEY, max_network_retries=0)


def test_round_trip_through_a_data_dir(tmp_path: Path) -> None:
    first = run_in_process(data_dir=tmp_path)
    try:
        client = client_for(first)
        cus = client.v1.customers.create(params={"name": "Kept", "source": "tok_visa"})
        paid = client.v1.charges.create(params={"amount": 700, "currency": "usd", "customer": cus.id})
        refund = client.v1.refunds.create(params={"charge": paid.id, "amount": 200})
        key = first.create_restricted_key(profile="full")
        first.backdate(paid.id, 1_750_000_000)
        deadline = time.monotonic() + 5
        while not (tmp_path / "state.pickle").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "state.pickle").exists(), "saved within seconds, before shutdown"
    finally:
        first.stop()
    second = run_in_process(data_dir=tmp_path)
    try:
        again = client_for(second)
        assert again.v1.customers.retrieve(cus.id).name == "Kept"
        kept = again.v1.charges.retrieve(paid.id)
        assert (kept.amount_refunded, kept.created) == (200, 1_750_000_000)
        assert [r.id for r in again.v1.refunds.list(params={"charge": paid.id}).data] == [refund.id]
        assert [c.id for c in again.v1.charges.list(params={"customer": cus.id}).data] == [paid.id]
        assert second.client(key).v1.customers.list().data  # the restricted key survived
        new = again.v1.customers.create(params={"name": "After restart"})
        assert [c.id for c in again.v1.customers.list().data] == [new.id, cus.id]
    finally:
        second.stop()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "state.pickle"]
    assert leftovers == []
    with (tmp_path / "state.pickle").open("rb") as f:
        assert pickle.load(f)["format"] == 1  # noqa: S301 - the file this test just made


def test_without_data_dir_nothing_is_written(tmp_path: Path) -> None:
    before = LOCALSTRIPE_FILE.stat().st_mtime if LOCALSTRIPE_FILE.exists() else None
    handle = run_in_process()
    try:
        client = client_for(handle)
        cus = client.v1.customers.create(params={"name": "Ephemeral"})
        client.v1.customers.update(cus.id, params={"name": "Still ephemeral"})
        time.sleep(1.5)
    finally:
        handle.stop()
    after = LOCALSTRIPE_FILE.stat().st_mtime if LOCALSTRIPE_FILE.exists() else None
    assert after == before
    restarted = run_in_process()
    try:
        assert client_for(restarted).v1.customers.list().data == []
    finally:
        restarted.stop()


def test_sigterm_saves_the_last_writes(tmp_path: Path) -> None:
    handle = run_in_process(data_dir=tmp_path)
    client = client_for(handle)
    cus = client.v1.customers.create(params={"name": "Last second"})
    handle.stop()  # immediately: only the shutdown save can have it
    restarted = run_in_process(data_dir=tmp_path)
    try:
        assert client_for(restarted).v1.customers.retrieve(cus.id).name == "Last second"
    finally:
        restarted.stop()
    assert os.path.getsize(tmp_path / "state.pickle") > 0
