"""A Key Vault outage mid-day (issue 17): the member hears "Stripe connection temporarily
unavailable", never a stack trace; nothing reaches Stripe and nothing is half-written; when the vault
answers again, the same refund goes through once."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlmodel import select
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from devtools.fake_keyvault import FakeKeyVault
from services import billing, notices, organization, spend, stripe_keys
from services.config import get_settings
from services.db import session_scope
from services.errors import StripeKeyUnknown, StripeNotConnected
from services.keyvault import SECRET_CHANGES, AzureKeyVaultSecretStore, is_transient
from services.models import AuditEntry, RefundSpend
from services.secrets import SecretStoreUnavailable, get_secret_store, make_secret_store
from services.stripe_gateway import STRIPE_KEY_SECRET, StripeGateway
from tests.conftest import forget_process_store, member_actor, redis_or_skip
from tests.keyvault_fixtures import running_vault
from tests.stripe_helpers import make_charge, sync_lists
from tests.test_stripe_connection import revoke
from tests.waiting import eventually


@pytest.fixture
def on_the_vault(any_store, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKeyVault]:  # type: ignore[no-untyped-def]
    with running_vault(monkeypatch) as vault:
        for name, value in {
            "BILLY_SECRET_STORE": "azure",
            "BILLY_KEY_VAULT_URL": vault.url,
            "BILLY_KEY_VAULT_CA_FILE": vault.ca_file,
            # Every read meets the outage at once, as a longer outage does once the kept copy
            # runs out; an outage shorter than the window: the last test here.
            "BILLY_KEY_VAULT_KEPT_SECONDS": "0",
        }.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        get_secret_store.cache_clear()
        yield vault
        forget_process_store()
        get_settings.cache_clear()


def test_a_refund_during_a_vault_outage_is_refused_in_words_and_loses_nothing(  # type: ignore[no-untyped-def]
    any_store, on_the_vault: FakeKeyVault, any_store_owner, stripe_peer
) -> None:
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    charge = make_charge(stripe_peer, 40_00)["id"]
    sync_lists()
    clerk = member_actor("billing_clerk", "clerk@example.com")
    store = get_secret_store()
    # The same retry policy, without its waits, to keep the test quick.
    store._retrying = Retrying(stop=stop_after_attempt(3), retry=retry_if_exception(is_transient), reraise=True)  # type: ignore[attr-defined]

    on_the_vault.outage = True
    with pytest.raises(SecretStoreUnavailable) as refused:
        billing.issue_refund(clerk, charge, None, None, "vault-outage-refund-0001")
    message = str(refused.value)
    assert message.startswith("Stripe connection temporarily unavailable")
    assert "Traceback" not in message and "rk_" not in message
    refunds = stripe_peer.secret_client().v1.refunds.list(params={"charge": charge}).data
    assert refunds == []  # nothing reached Stripe
    with session_scope() as session:
        assert session.exec(select(RefundSpend)).all() == []  # nothing counted against the budget
        (row,) = session.exec(select(AuditEntry).where(AuditEntry.action == "charges.refund")).all()
    assert row.outcome == "failed" and row.actor_email == "clerk@example.com"

    on_the_vault.outage = False
    billing.issue_refund(clerk, charge, None, None, "vault-outage-refund-0001")  # the same request, again
    refunds = stripe_peer.secret_client().v1.refunds.list(params={"charge": charge}).data
    assert [r.amount for r in refunds] == [40_00]
    with session_scope() as session:
        assert spend.check_budget(clerk, 0, "usd", session)[0].spent == 40_00


# --- reads kept a few seconds (BILLY_KEY_VAULT_KEPT_SECONDS) ---------------------------------------


def _keep_reads_for(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setenv("BILLY_KEY_VAULT_KEPT_SECONDS", str(seconds))
    get_settings.cache_clear()
    forget_process_store()


def test_an_outage_shorter_than_the_kept_window_does_not_interrupt_a_refund(  # type: ignore[no-untyped-def]
    any_store, on_the_vault: FakeKeyVault, any_store_owner, stripe_peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _keep_reads_for(monkeypatch, 60)
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    charge = make_charge(stripe_peer, 25_00)["id"]
    sync_lists()  # reads the key, which this process keeps for the window
    store = get_secret_store()
    store._retrying = Retrying(stop=stop_after_attempt(3), retry=retry_if_exception(is_transient), reraise=True)  # type: ignore[attr-defined]
    key_path = f"/secrets/{STRIPE_KEY_SECRET}"

    on_the_vault.outage = True
    asked = len(on_the_vault.requests)
    billing.issue_refund(member_actor("billing_clerk", "clerk@example.com"), charge, None, None, "kept-key-refund-01")

    refunds = stripe_peer.secret_client().v1.refunds.list(params={"charge": charge}).data
    assert [r.amount for r in refunds] == [25_00]
    # The key came from memory. (The audit chain's head, written beside each row, waits for the
    # vault: that write is logged and caught up with the next row, never raised.)
    assert not [r for r in on_the_vault.requests[asked:] if r.path.rstrip("/") == key_path]


def test_a_kept_key_replaced_by_another_worker_and_refused_by_stripe_does_not_alarm_the_owner(  # type: ignore[no-untyped-def]
    any_store, on_the_vault: FakeKeyVault, any_store_owner, stripe_peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This worker still holds the old key when Stripe refuses it (the rotation's notice was lost:
    Redis was away): the refusal is checked against the vault itself (`fresh`), so the new key is
    not reported as revoked, and the next call uses it."""
    _keep_reads_for(monkeypatch, 60)
    old = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(any_store_owner, old)
    make_charge(stripe_peer, 10_00)
    assert StripeGateway().list_page("customers")[0]  # this worker reads the key and keeps it
    settings = get_settings()  # a store that announces nothing: as if the notice were lost
    other_worker = AzureKeyVaultSecretStore(settings.key_vault_url, ca_file=settings.key_vault_ca_file)
    other_worker.set(STRIPE_KEY_SECRET, stripe_peer.restricted_key(profile="billy"))  # its Owner rotated
    other_worker.close()
    revoke(stripe_peer, old)

    with pytest.raises(StripeKeyUnknown):
        StripeGateway().list_page("customers")  # still the kept old key

    assert organization.get_organization().stripe_key_rejected is False  # type: ignore[union-attr]
    assert StripeGateway().list_page("customers")[0]  # the new key, read when the old one was refused


# --- a change on another worker reaches this one through Redis at once -------------------------------

# Another worker of the instance: a process of its own with the same settings, making one change on
# its own store (`get_secret_store`, as the app's) to the secret named on its command line.
OTHER_WORKER = """
import sys
from services import notices
notices.CHANNEL = sys.argv[1]
from services.secrets import get_secret_store
store = get_secret_store()  # as a worker's: sharing its changes
if sys.argv[2] == "set":
    store.set(sys.argv[3], sys.stdin.read())
else:
    store.delete(sys.argv[3])
"""


@pytest.fixture
def on_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process hears store-change notices through Redis, on a channel of this test's own."""
    redis_url = redis_or_skip()
    channel = f"billy:test:{uuid.uuid4().hex}"
    monkeypatch.setattr(notices, "CHANNEL", channel)
    monkeypatch.setenv("BILLY_REDIS_URL", redis_url)
    get_settings.cache_clear()
    notices._relay.cache_clear()
    yield channel
    notices._relay.cache_clear()  # its listener thread stays, on a channel no one else uses


def _on_another_worker(channel: str, action: str, name: str, value: str = "") -> None:
    subprocess.run(
        [sys.executable, "-c", OTHER_WORKER, channel, action, name], input=value, text=True, check=True, timeout=60
    )


def test_a_key_rotated_or_disconnected_on_another_worker_is_dropped_here_at_once(  # type: ignore[no-untyped-def]
    any_store, on_the_vault: FakeKeyVault, any_store_owner, stripe_peer, monkeypatch: pytest.MonkeyPatch, on_redis
) -> None:
    """With a 60 s window, this worker would use a rotated-away key for a minute, and a disconnected
    one too. The other worker's notice makes it drop both at once (well within the 5 s allowed here)."""
    _keep_reads_for(monkeypatch, 60)
    old = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(any_store_owner, old)
    make_charge(stripe_peer, 10_00)
    assert StripeGateway().list_page("customers")[0]  # this worker reads the key and keeps it

    new = stripe_peer.restricted_key(profile="billy")
    _on_another_worker(on_redis, "set", STRIPE_KEY_SECRET, new)  # its Owner rotated
    revoke(stripe_peer, old)
    assert eventually(lambda: get_secret_store().get(STRIPE_KEY_SECRET) == new, seconds=5)
    assert StripeGateway().list_page("customers")[0]  # with the new key: the old one is refused
    assert organization.get_organization().stripe_key_rejected is False  # type: ignore[union-attr]

    _on_another_worker(on_redis, "delete", STRIPE_KEY_SECRET)  # its Owner disconnected Stripe
    assert eventually(lambda: get_secret_store().get(STRIPE_KEY_SECRET) is None, seconds=5)
    with pytest.raises(StripeNotConnected):
        StripeGateway().list_page("customers")


def test_the_store_made_before_the_workers_fork_starts_no_notice_listener(  # type: ignore[no-untyped-def]
    on_the_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch, on_redis
) -> None:
    """`billy_app.serve` makes the instance's keys with a store of its own, then forks the workers. A
    listener thread started there would not exist in any worker, while its cached relay would make
    each worker believe it listens: its pages would hear no notice from another worker."""
    _keep_reads_for(monkeypatch, 60)
    watching = len(notices.get_bus()._watchers.get(SECRET_CHANGES, []))
    store = make_secret_store(get_settings())
    store.set("instance-signing-key", "a-key-made-before-the-fork")
    assert notices._relay.cache_info().currsize == 0
    assert len(notices.get_bus()._watchers.get(SECRET_CHANGES, [])) == watching
    store.close()  # type: ignore[attr-defined]
