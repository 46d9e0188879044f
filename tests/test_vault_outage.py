"""A Key Vault outage mid-day (issue 17): the member hears "Stripe connection temporarily
unavailable", never a stack trace; nothing reaches Stripe and nothing is half-written; when the vault
answers again, the same refund goes through once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import select
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from devtools.fake_keyvault import FakeKeyVault
from services import billing, spend, stripe_keys, sync
from services.config import get_settings
from services.db import session_scope
from services.keyvault import is_transient
from services.models import AuditEntry, RefundSpend
from services.secrets import SecretStoreUnavailable, get_secret_store
from tests.conftest import member_actor
from tests.keyvault_fixtures import running_vault
from tests.stripe_helpers import make_charge


@pytest.fixture
def on_the_vault(any_store, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKeyVault]:  # type: ignore[no-untyped-def]
    with running_vault(monkeypatch) as vault:
        for name, value in {
            "BILLY_SECRET_STORE": "azure",
            "BILLY_KEY_VAULT_URL": vault.url,
            "BILLY_KEY_VAULT_CA_FILE": vault.ca_file,
        }.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        get_secret_store.cache_clear()
        yield vault
        get_secret_store.cache_clear()
        get_settings.cache_clear()


def test_a_refund_during_a_vault_outage_is_refused_in_words_and_loses_nothing(  # type: ignore[no-untyped-def]
    any_store, on_the_vault: FakeKeyVault, any_store_owner, stripe_peer
) -> None:
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    charge = make_charge(stripe_peer, 40_00)["id"]
    sync.backfill()
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
