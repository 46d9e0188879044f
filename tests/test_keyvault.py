"""Azure Key Vault custody: the real azure-keyvault-secrets and azure-identity SDKs against the fake
vault (devtools/fake_keyvault.py) over real HTTPS, signing in through the real managed-identity flow.

The store's everyday behaviour is the shared contract (test_secret_store_contract.py); this file is
what only a vault has: the challenge and token, retries and outages, soft delete and purge,
prefixes, and the settings that point Billy at a vault.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.fake_keyvault import FakeKeyVault, free_port
from services import notices, secrets
from services.config import SecretStoreKind, settings_from_env
from services.errors import SettingsInvalid
from services.keyvault import AzureKeyVaultSecretStore
from services.secrets import SecretStoreError, SecretStoreUnavailable, make_secret_store
from tests.keyvault_fixtures import FAST, running_vault

MakeStore = Callable[..., AzureKeyVaultSecretStore]
UNAVAILABLE = (
    "Stripe connection temporarily unavailable: Billy could not reach its key vault. "
    "Nothing was changed; try again in a minute."
)
KEY = "rk_test_51SecretValueThatMustNeverBeLogged"


def _calls(vault: FakeKeyVault) -> list[tuple[str, str, bool, int]]:
    return [(r.method, r.path, r.authorized, r.status) for r in vault.requests]


# --- signing in ---------------------------------------------------------------------------------


def test_the_first_request_is_challenged_then_sent_with_a_managed_identity_token(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    store = vault_store(prefix="acme-")

    store.set("stripe-restricted-key", KEY)
    assert store.get("stripe-restricted-key") == KEY

    assert _calls(fake_vault) == [
        ("PUT", "/secrets/acme-stripe-restricted-key", False, 401),  # no token yet: Key Vault's challenge
        ("PUT", "/secrets/acme-stripe-restricted-key", True, 200),  # the same request, with the token
        ("GET", "/secrets/acme-stripe-restricted-key/", True, 200),  # the token is reused, no new challenge
    ]
    # The challenge named the vault's resource; the managed-identity endpoint was asked for it, once.
    assert fake_vault.token_requests == [
        {"path": "/msi/token", "resource": fake_vault.resource, "api-version": "2019-08-01"}
    ]
    assert all(r.query.get("api-version") for r in fake_vault.requests)


def test_without_a_managed_identity_the_store_says_it_cannot_sign_in(
    fake_vault: FakeKeyVault, vault_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-platform-secret")  # the endpoint refuses this caller
    store = vault_store()

    with pytest.raises(SecretStoreError) as refused:
        store.get("stripe-restricted-key")

    assert not isinstance(refused.value, SecretStoreUnavailable)  # waiting does not fix an identity
    assert str(refused.value).startswith(f"Billy could not sign in to its key vault at {fake_vault.url}: ")
    assert len(fake_vault.token_requests) == 1 and fake_vault.requests[0].status == 401


def test_a_vault_whose_certificate_is_not_trusted_is_refused_without_retrying(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    store = vault_store(ca_file="")  # the system's CAs only: the fake's own CA is unknown to them

    with pytest.raises(SecretStoreError, match="does not trust the TLS certificate") as refused:
        store.set("stripe-restricted-key", KEY)

    assert "BILLY_KEY_VAULT_CA_FILE" in str(refused.value) and KEY not in str(refused.value)
    assert fake_vault.requests == []  # nothing went over the untrusted connection


# --- transient failures and outages -------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 500, 429])
def test_transient_answers_are_retried_until_the_vault_answers(
    fake_vault: FakeKeyVault, vault_store: MakeStore, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    store = vault_store()
    store.set("stripe-restricted-key", KEY)
    fake_vault.requests.clear()
    fake_vault.fail_next(2, status)

    with caplog.at_level(logging.WARNING, logger="billy.keyvault"):
        assert store.get("stripe-restricted-key") == KEY

    assert [r.status for r in fake_vault.requests] == [status, status, 200]
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2


def test_dropped_connections_are_retried_and_write_once(fake_vault: FakeKeyVault, vault_store: MakeStore) -> None:
    store = vault_store()
    store.get("warm-up")  # the challenge and token out of the way
    fake_vault.drop_next(2)

    store.set("stripe-restricted-key", KEY)

    assert [r.status for r in fake_vault.requests[-3:]] == [0, 0, 200]
    assert len(fake_vault.versions("t-stripe-restricted-key")) == 1
    assert store.get("stripe-restricted-key") == KEY


def test_an_answer_slower_than_the_timeout_is_abandoned_and_retried(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    store = vault_store(timeout=0.3)
    store.set("stripe-restricted-key", KEY)
    fake_vault.stall_next(1, 1.5)

    started = time.monotonic()
    assert store.get("stripe-restricted-key") == KEY

    assert time.monotonic() - started < 1.2  # the stalled answer was not waited for


@pytest.mark.parametrize("operation", ["get", "set", "delete", "disable"])
def test_an_outage_says_the_stripe_connection_is_unavailable_and_nothing_else(
    fake_vault: FakeKeyVault, vault_store: MakeStore, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = vault_store()
    store.set("stripe-restricted-key", KEY)
    fake_vault.requests.clear()
    fake_vault.outage = True
    calls = {
        "get": lambda: store.get("stripe-restricted-key"),
        "set": lambda: store.set("stripe-restricted-key", KEY + "-new"),
        "delete": lambda: store.delete("stripe-restricted-key"),
        "disable": lambda: store.disable_versions_except_latest("stripe-restricted-key"),
    }

    with caplog.at_level(logging.DEBUG), pytest.raises(SecretStoreUnavailable) as unavailable:
        calls[operation]()

    assert str(unavailable.value) == UNAVAILABLE
    assert unavailable.value.code == "secret_store_unavailable"
    assert unavailable.value.__cause__ is None and unavailable.value.__suppress_context__  # no SDK chain
    assert [r.status for r in fake_vault.requests] == [0, 0, 0]  # FAST: three attempts, then the answer
    assert KEY not in caplog.text and "Traceback" not in caplog.text
    fake_vault.outage = False
    assert store.get("stripe-restricted-key") == KEY  # nothing was changed


def test_a_vault_nobody_answers_at_is_unavailable_too(fake_vault: FakeKeyVault, vault_store: MakeStore) -> None:
    store = AzureKeyVaultSecretStore(f"https://127.0.0.1:{free_port()}", ca_file=fake_vault.ca_file, **FAST)
    try:
        with pytest.raises(SecretStoreUnavailable, match=f"^{UNAVAILABLE}$"):
            store.get("stripe-restricted-key")
    finally:
        store.close()


def test_secret_values_never_reach_the_log(
    fake_vault: FakeKeyVault, vault_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = vault_store()
    with caplog.at_level(logging.DEBUG):
        fake_vault.fail_next(1)
        store.set("stripe-restricted-key", KEY)
        store.get("stripe-restricted-key")
        store.delete("stripe-restricted-key")
        store.set("stripe-restricted-key", KEY + "-again")  # the recovery path
        store.disable_versions_except_latest("stripe-restricted-key")

    assert caplog.records  # the SDK and the store did log (requests, the retry, the recovery)
    assert KEY not in caplog.text


# --- soft delete, recovery and purge ------------------------------------------------------------


def test_delete_keeps_the_secret_recoverable_until_purge_is_asked_for(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    store = vault_store()
    store.set("stripe-restricted-key", KEY)
    store.set("webhook-signing-secret", "whsec_x")

    store.delete("stripe-restricted-key")
    assert fake_vault.deleted_names() == ["t-stripe-restricted-key"]  # soft-deleted: an operator can recover it

    store.delete("stripe-restricted-key", purge=True)  # already deleted: purges it
    store.delete("webhook-signing-secret", purge=True)  # deleted and purged in one call

    assert fake_vault.names() == fake_vault.deleted_names() == []
    purges = [r.path for r in fake_vault.requests if r.method == "DELETE" and r.path.startswith("/deletedsecrets/")]
    assert purges == ["/deletedsecrets/t-stripe-restricted-key", "/deletedsecrets/t-webhook-signing-secret"]
    store.set("stripe-restricted-key", "rk_test_fresh")  # a purged name is free: a new secret, no recovery
    assert [enabled for _, enabled in fake_vault.versions("t-stripe-restricted-key")] == [True]


def test_delete_waits_until_the_vault_has_finished_deleting(
    monkeypatch: pytest.MonkeyPatch, vault_store: MakeStore
) -> None:
    with running_vault(monkeypatch, delete_polls=3) as vault:  # the deletion completes on the third check
        store = vault_store(vault=vault)
        store.set("stripe-restricted-key", KEY)

        store.delete("stripe-restricted-key", purge=True)

        checks = [r.status for r in vault.requests if r.method == "GET" and r.path.startswith("/deletedsecrets/")]
        assert checks == [404, 404, 404, 200]  # polled until done, only then purged
        assert vault.names() == vault.deleted_names() == []


def test_setting_a_deleted_name_recovers_it_and_disables_what_was_deleted(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    store = vault_store()
    store.set("stripe-restricted-key", "rk_test_disconnected_1")
    store.set("stripe-restricted-key", "rk_test_disconnected_2")
    store.delete("stripe-restricted-key")
    fake_vault.requests.clear()

    store.set("stripe-restricted-key", KEY)

    calls = [(r.method, r.path, r.status) for r in fake_vault.requests]
    assert calls[:2] == [
        ("PUT", "/secrets/t-stripe-restricted-key", 409),  # ObjectIsDeletedButRecoverable
        ("POST", "/deletedsecrets/t-stripe-restricted-key/recover", 200),
    ]
    assert ("PUT", "/secrets/t-stripe-restricted-key", 200) in calls
    assert [enabled for _, enabled in fake_vault.versions("t-stripe-restricted-key")] == [False, False, True]
    assert store.get("stripe-restricted-key") == KEY
    fake_vault.set_enabled("t-stripe-restricted-key", fake_vault.versions("t-stripe-restricted-key")[-1][0], False)
    assert store.get("stripe-restricted-key") is None  # a deleted value is never served again


# --- versions -----------------------------------------------------------------------------------


def test_disabling_all_but_the_latest_follows_every_page(fake_vault: FakeKeyVault, vault_store: MakeStore) -> None:
    store = vault_store()
    for n in range(5):
        store.set("stripe-restricted-key", f"rk_test_{n}")

    assert store.disable_versions_except_latest("stripe-restricted-key") == 4

    versions = fake_vault.versions("t-stripe-restricted-key")
    assert [enabled for _, enabled in versions] == [False, False, False, False, True]
    assert any("$skiptoken" in r.query for r in fake_vault.requests)  # page size 2: nextLink followed
    assert store.get("stripe-restricted-key") == "rk_test_4"


def test_when_the_newest_version_is_disabled_the_newest_enabled_one_is_read(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    store = vault_store()
    store.set("stripe-restricted-key", "rk_test_good")
    fake_vault.advance(5)  # Key Vault's timestamps are whole seconds
    store.set("stripe-restricted-key", "rk_test_bad")
    bad = fake_vault.versions("t-stripe-restricted-key")[-1][0]
    fake_vault.set_enabled("t-stripe-restricted-key", bad, False)  # an operator rolls the rotation back

    assert store.get("stripe-restricted-key") == "rk_test_good"
    assert store.disable_versions_except_latest("stripe-restricted-key") == 0  # the good one is the current one
    assert store.get("stripe-restricted-key") == "rk_test_good"


# --- prefixes: one vault, several organisations -------------------------------------------------


def test_two_prefixes_are_two_organisations_that_never_see_each_other(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    acme, globex = vault_store(prefix="acme-"), vault_store(prefix="globex-")

    acme.set("stripe-restricted-key", "rk_test_acme")
    assert globex.get("stripe-restricted-key") is None
    globex.set("stripe-restricted-key", "rk_test_globex")
    acme.delete("stripe-restricted-key", purge=True)

    assert globex.get("stripe-restricted-key") == "rk_test_globex"
    assert acme.get("stripe-restricted-key") is None
    assert fake_vault.names() == ["globex-stripe-restricted-key"]


def test_names_are_checked_with_their_prefix_before_any_request(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    store = vault_store(prefix="acme-")

    with pytest.raises(SecretStoreError, match=r"with the prefix 'acme-' it is longer than Key Vault's 127"):
        store.set("x" * 123, "v")
    with pytest.raises(SecretStoreError, match=r"^Invalid secret name 'bad_name'"):
        store.get("bad_name")
    store.set("x" * 122, "v")  # 5 + 122 = 127: the longest name the vault takes

    assert [r.path for r in fake_vault.requests if r.status == 200] == ["/secrets/acme-" + "x" * 122]


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"BILLY_SECRET_STORE": "azure"},
            "BILLY_KEY_VAULT_URL is not set: BILLY_SECRET_STORE is azure, so give the vault's https address "
            "(e.g. https://billy-acme.vault.azure.net).",
        ),
        (
            {"BILLY_SECRET_STORE": "azure", "BILLY_KEY_VAULT_URL": "http://billy-acme.vault.azure.net"},
            "BILLY_KEY_VAULT_URL is 'http://billy-acme.vault.azure.net': use the vault's https address "
            "(e.g. https://billy-acme.vault.azure.net): Key Vault answers over https only.",
        ),
        (
            {"BILLY_SECRET_STORE": "azure", "BILLY_KEY_VAULT_URL": "billy-acme.vault.azure.net"},
            "BILLY_KEY_VAULT_URL is 'billy-acme.vault.azure.net': use the vault's https address "
            "(e.g. https://billy-acme.vault.azure.net): Key Vault answers over https only.",
        ),
        (
            {"BILLY_SECRET_STORE": "azure", "BILLY_KEY_VAULT_URL": "https://billy-acme.vault.azure.net/secrets/x"},
            "BILLY_KEY_VAULT_URL is 'https://billy-acme.vault.azure.net/secrets/x': use the vault's address alone, "
            "with no path, query or user (e.g. https://billy-acme.vault.azure.net).",
        ),
        (
            {"BILLY_KEY_VAULT_SECRET_PREFIX": "acme_"},
            "BILLY_KEY_VAULT_SECRET_PREFIX is 'acme_': use at most 64 letters, digits and dashes "
            "(Key Vault's secret names).",
        ),
    ],
    ids=["missing", "http", "no-scheme", "path", "prefix"],
)
def test_a_bad_vault_setting_is_a_clear_settings_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsInvalid) as invalid:
        settings_from_env(environ)

    assert str(invalid.value) == message


def test_vault_settings_are_only_checked_for_the_azure_store() -> None:
    assert settings_from_env({"BILLY_KEY_VAULT_URL": "not checked: local store"}).secret_store is SecretStoreKind.LOCAL
    azure = settings_from_env(
        {"BILLY_SECRET_STORE": "azure", "BILLY_KEY_VAULT_URL": "https://billy-acme.vault.azure.net/"}
    )
    assert azure.key_vault_url == "https://billy-acme.vault.azure.net"


def test_a_store_made_in_code_checks_its_settings_too(tmp_path: Path) -> None:
    with pytest.raises(SettingsInvalid, match=r"^BILLY_KEY_VAULT_URL is 'http://vault\.test': "):
        AzureKeyVaultSecretStore("http://vault.test")
    with pytest.raises(SettingsInvalid, match=r"^BILLY_KEY_VAULT_CA_FILE is '.*missing\.pem': there is no file"):
        AzureKeyVaultSecretStore("https://billy-acme.vault.azure.net", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(SettingsInvalid, match=r"^BILLY_KEY_VAULT_SECRET_PREFIX is 'a/b'"):
        AzureKeyVaultSecretStore("https://billy-acme.vault.azure.net", prefix="a/b")


def test_the_instance_store_is_the_vault_when_the_settings_say_azure(
    fake_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLY_SECRET_STORE", "azure")
    monkeypatch.setenv("BILLY_KEY_VAULT_URL", fake_vault.url)
    monkeypatch.setenv("BILLY_KEY_VAULT_SECRET_PREFIX", "acme-")
    monkeypatch.setenv("BILLY_KEY_VAULT_CA_FILE", fake_vault.ca_file)
    from services.config import get_settings

    get_settings.cache_clear()
    secrets.get_secret_store.cache_clear()
    try:
        store = secrets.get_secret_store()
        assert isinstance(store, AzureKeyVaultSecretStore) and store.prefix == "acme-"
        store.set("stripe-restricted-key", KEY)
        assert fake_vault.names() == ["acme-stripe-restricted-key"]
        assert isinstance(make_secret_store(get_settings()), AzureKeyVaultSecretStore)
    finally:
        get_settings.cache_clear()
        secrets.get_secret_store.cache_clear()


# --- reads kept a few seconds (`kept_seconds`, BILLY_KEY_VAULT_KEPT_SECONDS) -----------------------


def _reads_of(vault: FakeKeyVault, name: str) -> int:
    return sum(1 for r in vault.requests if r.method == "GET" and r.path.rstrip("/") == f"/secrets/t-{name}")


def test_a_value_is_read_once_per_window_and_this_stores_own_writes_are_seen_at_once(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    """Every Stripe request reads the key: 200 of them within the window ask the vault once."""
    store = vault_store(kept_seconds=60)
    store.set("stripe-restricted-key", "rk_test_first")
    assert all(store.get("stripe-restricted-key") == "rk_test_first" for _ in range(200))
    assert _reads_of(fake_vault, "stripe-restricted-key") == 0  # the write itself is what is kept

    store.set("stripe-restricted-key", "rk_test_second")
    assert store.get("stripe-restricted-key") == "rk_test_second"
    store.delete("stripe-restricted-key")
    assert store.get("stripe-restricted-key") is None


def test_another_workers_change_is_seen_when_the_window_ends_or_at_once_when_fresh(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    this_worker, other_worker = vault_store(kept_seconds=0.5), vault_store()
    other_worker.set("stripe-restricted-key", "rk_test_old")
    assert this_worker.get("stripe-restricted-key") == "rk_test_old"
    other_worker.set("stripe-restricted-key", "rk_test_new")

    assert this_worker.get("stripe-restricted-key") == "rk_test_old"  # kept
    assert this_worker.get("stripe-restricted-key", fresh=True) == "rk_test_new"
    other_worker.delete("stripe-restricted-key")
    time.sleep(0.6)
    assert this_worker.get("stripe-restricted-key") is None  # the window is over: the vault's answer


def test_a_missing_secret_is_never_kept(fake_vault: FakeKeyVault, vault_store: MakeStore) -> None:
    """The Owner connects a key on another worker: this one must not go on saying "not connected"."""
    this_worker, other_worker = vault_store(kept_seconds=60), vault_store()
    assert this_worker.get("stripe-restricted-key") is None
    other_worker.set("stripe-restricted-key", "rk_test_connected")

    assert this_worker.get("stripe-restricted-key") == "rk_test_connected"


def test_stores_that_share_changes_drop_a_secret_another_changed_at_once(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    """A rotation or disconnection on one worker reaches the others as a notice, long before their
    60 s window ends; a "reload everything" notice (Redis came back) drops every kept value."""
    this_worker, other_worker, unheard = vault_store(kept_seconds=60), vault_store(kept_seconds=60), vault_store()
    this_worker.share_changes()
    other_worker.share_changes()
    other_worker.set("stripe-restricted-key", "rk_test_old")
    assert this_worker.get("stripe-restricted-key") == "rk_test_old"

    other_worker.set("stripe-restricted-key", "rk_test_new")
    assert this_worker.get("stripe-restricted-key") == "rk_test_new"
    reads = _reads_of(fake_vault, "stripe-restricted-key")
    assert this_worker.get("stripe-restricted-key") == "rk_test_new"
    assert _reads_of(fake_vault, "stripe-restricted-key") == reads  # kept again until the next change
    other_worker.delete("stripe-restricted-key")
    assert this_worker.get("stripe-restricted-key") is None

    other_worker.set("stripe-restricted-key", "rk_test_again")
    assert this_worker.get("stripe-restricted-key") == "rk_test_again"
    unheard.set("stripe-restricted-key", "rk_test_while_redis_was_away")  # announces nothing
    assert this_worker.get("stripe-restricted-key") == "rk_test_again"
    notices.get_bus().deliver(notices.EVERYTHING)
    assert this_worker.get("stripe-restricted-key") == "rk_test_while_redis_was_away"


def test_a_store_that_keeps_nothing_or_is_closed_hears_no_changes(
    fake_vault: FakeKeyVault, vault_store: MakeStore
) -> None:
    def watching() -> int:
        return sum(len(w) for w in notices.get_bus()._watchers.values())

    before = watching()
    vault_store().share_changes()  # keeps nothing, so nothing of it can go stale
    assert watching() == before
    store = vault_store(kept_seconds=60)
    store.share_changes()
    store.share_changes()  # once is enough
    assert watching() == before + 1
    store.close()
    assert watching() == before
