"""The fake Key Vault (devtools/fake_keyvault.py) for tests that drive the real Azure SDK.

Registered for every test module in tests/conftest.py, like `smtp_catcher`:

    def test_something(fake_vault, vault_store):
        store = vault_store(prefix="acme-")          # AzureKeyVaultSecretStore on the fake, fast retries
        store.set("stripe-restricted-key", "rk_test_…")
        assert fake_vault.names() == ["acme-stripe-restricted-key"]

`fake_vault` is a fresh vault and identity endpoint per test, with `IDENTITY_ENDPOINT` and
`IDENTITY_HEADER` pointing azure-identity's managed identity at it (and any `AZURE_*` variable of
the machine removed, so the credential chain is the same everywhere).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from devtools.fake_keyvault import FakeKeyVault

if TYPE_CHECKING:  # the Azure SDK is imported by the tests that use it, not by every test process
    from services.keyvault import AzureKeyVaultSecretStore

# Fast failure paths: 3 attempts with no wait between, 2 s timeouts, delete/recover polled every 10 ms.
# Quick retries, and no kept reads: these tests watch each call reach the vault. The kept window's
# own tests (test_keyvault.py) and the store contract ask for one.
FAST = {"attempts": 3, "retry_wait": 0, "timeout": 2.0, "poll_interval": 0.01, "kept_seconds": 0.0}
_PLATFORM_VARIABLES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")


@contextmanager
def running_vault(monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[FakeKeyVault]:
    """A started fake vault (`options`: FakeKeyVault's) that this process's managed identity asks for tokens."""
    # The SDK remembers each vault's challenge per host:port for the whole process; a fake on a
    # recycled port must start with a challenge like a new vault does.
    from azure.keyvault.secrets._shared import http_challenge_cache

    for name in list(os.environ):
        if name.startswith(_PLATFORM_VARIABLES):
            monkeypatch.delenv(name)
    http_challenge_cache.clear()
    with FakeKeyVault(**options) as vault:
        for name, value in vault.identity_env().items():
            monkeypatch.setenv(name, value)
        try:
            yield vault
        finally:
            http_challenge_cache.clear()


@pytest.fixture
def fake_vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKeyVault]:
    with running_vault(monkeypatch) as vault:
        yield vault


@pytest.fixture
def vault_store(fake_vault: FakeKeyVault) -> Iterator[Callable[..., AzureKeyVaultSecretStore]]:
    """Makes stores on `fake_vault` (trusting its CA, fast retries); closes them after the test."""
    from services.keyvault import AzureKeyVaultSecretStore

    made: list[AzureKeyVaultSecretStore] = []

    def make(prefix: str = "t-", vault: FakeKeyVault | None = None, **options: Any) -> AzureKeyVaultSecretStore:
        target = vault or fake_vault
        store = AzureKeyVaultSecretStore(target.url, prefix=prefix, **({"ca_file": target.ca_file} | FAST | options))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
