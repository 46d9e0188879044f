"""The instance's signing keys are read from the secret store once per process and kept a while
(`services.signing.KEY_KEPT_SECONDS`): each websocket event verifies its access JWT, and a store
read each time is a file and a decryption under one lock, or a Key Vault call on Azure.
What the team relies on still holds: tokens verify, a forged one does not, a key replaced in the
store is taken up once the kept copy runs out, and two stores never share a key."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from services import identity, signing
from services.errors import NotAuthenticated
from services.secrets import LocalEncryptedSecretStore
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD


class CountingStore(LocalEncryptedSecretStore):
    """The real encrypted store, counting its reads."""

    reads = 0

    def get(self, name: str, *, fresh: bool = False) -> str | None:
        self.reads += 1
        return super().get(name)


@pytest.fixture
def counting_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CountingStore:
    store = CountingStore(tmp_path / "secrets", tmp_path / "master.key")
    monkeypatch.setattr(signing, "get_secret_store", lambda: store)
    return store


def test_two_hundred_verifications_read_the_key_once(any_store_owner, counting_store: CountingStore) -> None:  # type: ignore[no-untyped-def]
    access = identity.login(OWNER_EMAIL, OWNER_PASSWORD, "10.0.0.1", "pytest").access
    reads = counting_store.reads
    for _ in range(200):
        assert identity.verify_access(access).email == OWNER_EMAIL
    assert counting_store.reads == reads  # the key was already kept from signing the token
    forged = jwt.encode(jwt.decode(access, options={"verify_signature": False}), "x" * 64, algorithm="HS256")
    with pytest.raises(NotAuthenticated):
        identity.verify_access(forged)


def test_a_key_replaced_in_the_store_is_taken_up_when_the_kept_copy_runs_out(
    any_store_owner, counting_store: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    access = identity.login(OWNER_EMAIL, OWNER_PASSWORD, "10.0.0.1", "pytest").access
    counting_store.set(identity.JWT_KEY_SECRET, "a-new-key-set-by-an-operator-" + "y" * 40)
    identity.verify_access(access)  # still the kept key: the old token holds for now
    monkeypatch.setattr(signing, "KEY_KEPT_SECONDS", 0.0)
    signing._kept.clear()
    with pytest.raises(NotAuthenticated):  # the store's new key: tokens signed before no longer hold
        identity.verify_access(access)


def test_two_stores_never_share_a_kept_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stores = [LocalEncryptedSecretStore(tmp_path / f"s{n}", tmp_path / f"m{n}.key") for n in (1, 2)]
    keys = []
    for store in stores:
        monkeypatch.setattr(signing, "get_secret_store", lambda store=store: store)
        keys.append(signing.instance_key())
        assert signing.instance_key() == keys[-1] == store.get(signing.SIGNING_KEY_SECRET)
    assert keys[0] != keys[1]
