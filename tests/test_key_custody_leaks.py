"""Proof of "never" at the server (issue 17): a recognisable restricted key goes through onboarding
and a day's work (sync, refunds, the REST API, health checks, key rotation) on SQLite and on
PostgreSQL, with the local secret store and with Key Vault, and afterwards appears in no HTTP response (body or header), no log record at any
level, no database file or dump, and nowhere in the instance's folder outside the secret store's
ciphertext. The browser's side (websocket frames, the built frontend, Reflex's state) is in
tests/browser/test_key_never_leaks.py; both use tests/leak_scan.py.
"""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from billy_app.api.routes import build_api
from billy_app.api.v1 import rate
from devtools.fake_keyvault import FakeKeyVault
from services import agent_tokens, billing, identity, sync
from services.agent_tokens import ScopeRequest
from services.config import get_settings
from services.logging_setup import LOG_FORMAT, install_scrubber
from services.secrets import get_secret_store
from services.stripe_gateway import STRIPE_KEY_SECRET
from tests.conftest import member_actor
from tests.keyvault_fixtures import running_vault
from tests.leak_scan import LeakScan
from tests.log_capture import root_log
from tests.stripe_helpers import make_charge

ORIGIN = {"origin": "http://localhost:3000"}


@pytest.fixture(params=["local", "azure"])
def custody(
    request: pytest.FixtureRequest, any_store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeKeyVault | None]:  # type: ignore[no-untyped-def]
    """The instance's secret store: the local encrypted files, or Key Vault (the fake, through the
    real SDK) before anything is stored, so the signing key and the audit head live there too."""
    if request.param == "local":
        yield None
        return
    with running_vault(monkeypatch) as vault:
        monkeypatch.setenv("BILLY_SECRET_STORE", "azure")
        monkeypatch.setenv("BILLY_KEY_VAULT_URL", vault.url)
        monkeypatch.setenv("BILLY_KEY_VAULT_CA_FILE", vault.ca_file)
        monkeypatch.setenv("BILLY_KEY_VAULT_SECRET_PREFIX", "acme-")
        get_settings.cache_clear()
        get_secret_store.cache_clear()
        yield vault
        get_secret_store.cache_clear()
        get_settings.cache_clear()


@pytest.fixture
def every_log_record() -> Iterator[io.StringIO]:
    """Every record of every logger at every level, formatted as the app writes them."""
    install_scrubber()
    with root_log(logging.DEBUG, handler_level=logging.DEBUG, formatter=logging.Formatter(LOG_FORMAT)) as stream:
        yield stream


class Responses:
    """A test client that keeps every response's status line, headers and body for the scan."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.seen: list[tuple[str, bytes]] = []

    def __call__(self, method: str, url: str, **kwargs: object):  # type: ignore[no-untyped-def]
        response = self.client.request(method, url, **kwargs)  # type: ignore[arg-type]
        head = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        self.seen.append((f"{method} {url} → {response.status_code}", head.encode() + b"\n\n" + response.content))
        return response


def test_the_key_appears_nowhere_but_in_the_secret_store(  # type: ignore[no-untyped-def]
    any_store, custody, any_store_owner, stripe_peer, every_log_record: io.StringIO
) -> None:
    key = stripe_peer.restricted_key(profile="billy")
    rate.use_limit(rate.CallerLimit())
    with TestClient(build_api(), base_url="http://localhost:3000", follow_redirects=False) as client:
        http = Responses(client)
        client.cookies.set(
            identity.ACCESS_COOKIE, identity.start_session(any_store_owner.user_id or 0, "127.0.0.1", "pytest").access
        )
        # Onboarding step 2: the key pasted into the form, as the browser posts it.
        connected = http("POST", "/api/onboarding/stripe-key", data={"key": key}, headers=ORIGIN)
        assert connected.status_code == 303, connected.text
        assert get_secret_store().get(STRIPE_KEY_SECRET) == key  # it is in the store, and used
        if custody is not None:
            assert "acme-" + STRIPE_KEY_SECRET in custody.names()  # in the vault, under this instance's prefix
        # A day's work: sync, refunds from the dashboard's service and through the REST API.
        charges = [make_charge(stripe_peer, 20_00, description=f"Order #{n}")["id"] for n in range(3)]
        sync.background_sync.join(120)  # connecting started the first sync; one backfill at a time
        sync.backfill()
        billing.issue_refund(any_store_owner, charges[0], None, None, "leak-test-refund-0001")
        clerk = member_actor("billing_clerk", "clerk@example.com")
        secret = agent_tokens.issue_token(clerk, "Test script", ScopeRequest()).secret
        bearer = {"Authorization": f"Bearer {secret}"}
        assert http("POST", "/api/v1/refunds", headers=bearer, json={"charge_id": charges[1]}).status_code == 201
        for path in ("/api/v1/charges", f"/api/v1/charges/{charges[1]}", "/api/v1/customers", "/api/v1/openapi.json"):
            assert http("GET", path, headers=bearer).status_code == 200, path
        for path in ("/healthz", "/readyz"):
            http("GET", path)
        # Rotation in Settings → Stripe connection, to a second key of the same account.
        rotated = stripe_peer.restricted_key(profile="billy")
        swapped = http("POST", "/api/settings/stripe-key", data={"key": rotated}, headers=ORIGIN)
        assert swapped.status_code == 303 and get_secret_store().get(STRIPE_KEY_SECRET) == rotated
        billing.issue_refund(any_store_owner, charges[2], None, None, "leak-test-refund-0002")  # on the new key
        # A key Stripe refuses, pasted by mistake, must not echo either.
        refused = http("POST", "/api/onboarding/stripe-key", data={"key": "rk_test_" + "Z" * 30}, headers=ORIGIN)
        assert refused.status_code in (303, 400)
    rate.use_limit(None)

    scan = LeakScan({"the connected key": key, "the key it was rotated to": rotated})
    for where, blob in http.seen:
        scan.scan(f"HTTP response {where}", blob)
    logged = every_log_record.getvalue()
    assert "stripe" in logged.lower() or "sync" in logged.lower()  # the capture did see the day's work
    scan.scan("log records (all levels)", logged)
    data_dir = any_store.data_dir
    secret_files = (data_dir / "secrets", data_dir / "keys")
    if any_store.kind == "postgresql":
        url = make_url(any_store.database_url)
        dump = subprocess.run(
            ["pg_dump", "--no-owner", "-h", url.host or "127.0.0.1", "-U", url.username or "postgres", url.database],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        assert b"audit_log" in dump and b"stripe_charge" in dump  # a real dump of this instance's store
        scan.scan(f"pg_dump of {url.database}", dump)
    files = scan.scan_tree(data_dir, skip=secret_files)  # the SQLite store and its WAL, and all else
    assert files >= (1 if any_store.kind == "sqlite" else 0)
    # The local secret store keeps only ciphertext: not even there in the clear (with Key Vault,
    # nothing of the store is on this machine at all).
    assert (data_dir / "secrets").exists() == (custody is None)
    if custody is None:
        scan.scan_tree(data_dir / "secrets")
    assert scan.found == [], scan.found
