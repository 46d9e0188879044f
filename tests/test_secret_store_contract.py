"""One contract for every secret store: the local encrypted files and Azure Key Vault (the real SDK
against the fake vault over HTTPS) must answer the same calls the same way.

Store-specific behaviour (the vault's challenge, retries, soft delete, prefixes) is in
tests/test_keyvault.py; the local store's encryption and master key in test_foundations.py
and test_master_key_rotation.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from services.secrets import LocalEncryptedSecretStore, SecretStore, SecretStoreError

NAME = "stripe-restricted-key"
INVALID_NAMES = ["", "has space", "slash/inside", "under_score", "dot.ted", "clé", "x" * 128, "new\nline", "trailing\n"]


@pytest.fixture(params=["local", "azure"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SecretStore:
    if request.param == "local":
        return LocalEncryptedSecretStore(tmp_path / "secrets", tmp_path / "keys" / "master.key")
    make: Callable[..., SecretStore] = request.getfixturevalue("vault_store")
    return make(kept_seconds=5.0)  # as in production: what this store wrote or deleted, it reads back at once


def test_a_value_set_is_the_value_read(store: SecretStore) -> None:
    store.set(NAME, "rk_test_first")

    assert store.get(NAME) == "rk_test_first"


def test_setting_again_answers_the_newest_value(store: SecretStore) -> None:
    store.set(NAME, "rk_test_old")
    store.set(NAME, "rk_test_new")

    assert store.get(NAME) == "rk_test_new"


def test_a_secret_never_set_reads_as_none(store: SecretStore) -> None:
    store.set("another-name", "value")

    assert store.get(NAME) is None


def test_a_deleted_secret_reads_as_none_and_others_stay(store: SecretStore) -> None:
    store.set(NAME, "rk_test_gone")
    store.set("webhook-signing-secret", "whsec_stays")

    store.delete(NAME)

    assert store.get(NAME) is None
    assert store.get("webhook-signing-secret") == "whsec_stays"


def test_deleting_what_is_not_there_is_not_an_error(store: SecretStore) -> None:
    store.delete(NAME)
    store.set(NAME, "v")
    store.delete(NAME)
    store.delete(NAME)

    assert store.get(NAME) is None


def test_a_name_can_be_set_again_after_its_delete(store: SecretStore) -> None:
    """On Key Vault the deleted name is still taken (soft delete): the store recovers it, then writes."""
    store.set(NAME, "rk_test_before")
    store.delete(NAME)

    store.set(NAME, "rk_test_after")

    assert store.get(NAME) == "rk_test_after"


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
def test_names_outside_key_vaults_rule_are_refused_by_every_method(store: SecretStore, name: str) -> None:
    for call in (
        lambda: store.get(name),
        lambda: store.set(name, "v"),
        lambda: store.delete(name),
        lambda: store.create_if_absent(name, "v"),
        lambda: store.disable_versions_except_latest(name),
    ):
        with pytest.raises(SecretStoreError, match=r"^Invalid secret name "):
            call()


def test_creating_a_missing_secret_stores_it_and_answers_it(store: SecretStore) -> None:
    assert store.create_if_absent(NAME, "first-proposal") == "first-proposal"

    assert store.get(NAME) == "first-proposal"


def test_creating_a_secret_that_exists_keeps_it_and_answers_the_kept_value(store: SecretStore) -> None:
    """The instance's keys rely on this: a process proposing a key after another made one must go on
    with the other's, or tokens signed by one worker are refused by the next."""
    store.create_if_absent(NAME, "first-proposal")

    assert store.create_if_absent(NAME, "second-proposal") == "first-proposal"
    assert store.get(NAME) == "first-proposal"


def test_a_secret_deleted_can_be_created_again(store: SecretStore) -> None:
    store.create_if_absent(NAME, "before")
    store.delete(NAME)

    assert store.create_if_absent(NAME, "after") == "after"
    assert store.get(NAME) == "after"


def test_longest_valid_name_is_accepted_by_the_local_store(tmp_path: Path) -> None:
    store = LocalEncryptedSecretStore(tmp_path / "secrets", tmp_path / "keys" / "master.key")
    store.set("x" * 127, "v")

    assert store.get("x" * 127) == "v"


@pytest.mark.parametrize(
    "value",
    ["pässwörd ✓ 鍵 🔑", 'quotes " and \\ backslash', "two\nlines\r\nand\ttab", " padded ", '{"json": [1, 2]}'],
    ids=["unicode", "quotes", "controls", "spaces", "json"],
)
def test_values_come_back_exactly(store: SecretStore, value: str) -> None:
    store.set(NAME, value)

    assert store.get(NAME) == value


def test_a_10_kb_value_comes_back_whole(store: SecretStore) -> None:
    value = "".join(chr(0x41 + i % 26) for i in range(10 * 1024 - 3)) + "end"

    store.set(NAME, value)

    assert store.get(NAME) == value and len(value) == 10 * 1024


def test_disabling_older_versions_keeps_the_newest_readable(store: SecretStore) -> None:
    for value in ("rk_test_1", "rk_test_2", "rk_test_3"):
        store.set(NAME, value)

    disabled = store.disable_versions_except_latest(NAME)

    assert store.get(NAME) == "rk_test_3"
    assert disabled in (0, 2)  # local: one version only, nothing to disable; vault: the two older ones
    assert store.disable_versions_except_latest(NAME) == 0  # nothing left to do
    store.set(NAME, "rk_test_4")
    assert store.get(NAME) == "rk_test_4"


def test_disabling_versions_of_a_missing_secret_does_nothing(store: SecretStore) -> None:
    assert store.disable_versions_except_latest(NAME) == 0
    assert store.get(NAME) is None
