"""Settings → Stripe connection (issue 17): re-check, rotate, disconnect, and a key Stripe rejects.

Against the sandbox Stripe peer (which can make keys of another account and revoke keys), on
SQLite and PostgreSQL, with a real SMTP catcher. "The old key still works" is proven by a call
through the gateway after each refusal; "the next call uses the new key" by revoking the old
key in the sandbox first.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlmodel import func, select
from starlette.testclient import TestClient

from billy_app.api import flash
from billy_app.api.routes import build_api
from billy_app.state.session import SessionState
from billy_app.state.stripe_connection import StripeConnectionState
from services import identity, organization, stripe_events, stripe_keys, sync
from services.db import session_scope
from services.errors import PermissionDenied, StripeKeyRejected, StripeKeyUnknown, StripeNotConnected
from services.models import AuditEntry, StripeCharge, StripeConnection, StripeCustomer, StripeEvent
from services.permissions import Actor
from services.secrets import get_secret_store
from services.stripe_gateway import STRIPE_KEY_SECRET, StripeGateway
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD, StripePeer, member_actor
from tests.reflex_events import event_pipeline
from tests.test_webhooks import customer_event, signed

ORIGIN = {"origin": "http://localhost:3000"}


# --- helpers --------------------------------------------------------------------------------------


def revoke(peer: StripePeer, key: str) -> None:
    httpx.delete(f"{peer.url}/_config/restricted_keys/{key}", timeout=10).raise_for_status()


def _connect_with_data(owner: Actor, peer: StripePeer) -> str:
    """A restricted key of the sandbox account connected, and a customer with a charge synced."""
    client = peer.secret_client()
    customer = client.v1.customers.create(params={"email": "ada@example.com", "source": "tok_visa"})
    client.v1.charges.create(params={"amount": 2500, "currency": "usd", "customer": customer.id})
    key = peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, key)
    assert sync.backfill(resources=["customers", "charges"]) == {"customers": "done", "charges": "done"}
    return key


def _stripe_answers() -> int:
    """One read through the gateway with whatever key is connected: how many customers Stripe lists."""
    items, _ = StripeGateway().list_page("customers")
    return len(items)


def _audit(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))  # type: ignore[arg-type]


def _stored() -> dict[str, int]:
    with session_scope() as s:
        return {
            "customers": s.exec(select(func.count()).select_from(StripeCustomer)).one(),
            "charges": s.exec(select(func.count()).select_from(StripeCharge)).one(),
        }


def _mails(catcher: Any, at_least: int = 1) -> list[Any]:
    """What the catcher holds once `at_least` mails are in (the Owner's leaves from a thread), and
    a moment more, so that a second mail would be seen too."""
    deadline = time.monotonic() + 10
    while len(catcher.messages()) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return list(catcher.messages())


def _row() -> StripeConnection:
    with session_scope() as s:
        row = s.exec(select(StripeConnection)).one()
        s.expunge(row)
        return row


# --- rotate ---------------------------------------------------------------------------------------


def test_rotating_swaps_the_key_and_the_next_stripe_call_uses_the_new_one(
    any_store, any_store_owner: Actor, stripe_peer: StripePeer
) -> None:  # type: ignore[no-untyped-def]
    old = _connect_with_data(any_store_owner, stripe_peer)
    new = stripe_peer.restricted_key(profile="billy")
    rotated = stripe_keys.rotate_stripe_key(any_store_owner, new)
    assert (rotated.mode, rotated.key_hint) == ("test", new[-4:])

    revoke(stripe_peer, old)  # from here on only the new key can answer
    assert _stripe_answers() == 1
    assert get_secret_store().get(STRIPE_KEY_SECRET) == new
    view = stripe_keys.connection_overview(any_store_owner)
    assert (view.connected, view.mode, view.key_hint) == (True, "test", new[-4:])
    assert view.rotated_by == OWNER_EMAIL and view.rotated_at is not None and view.connected_by == OWNER_EMAIL
    assert all(view.permissions.values()) and view.rejected_at is None
    (row,) = _audit("stripe.rotate")
    assert (row.outcome, row.actor_email) == ("ok", OWNER_EMAIL)
    assert row.details["key_hint"] == new[-4:] and row.details["replaces"] == old[-4:]
    assert row.details["account_check"] == "account id and synced objects found"
    text = str(row.details) + str(_row().model_dump())
    assert old not in text and new not in text  # only last fours, in the log and the store


REFUSALS = {
    # name: (how to make the key, code, words the Owner reads)
    "live mode": (
        lambda peer: peer.restricted_key(profile="billy", key="rk_live_" + "L" * 30),
        "other_mode",
        "live mode",
    ),
    "another account": (
        lambda peer: peer.restricted_key(profile="billy", account="acct_elsewhere"),
        "other_account",
        "another Stripe account",
    ),
    "missing a permission": (
        lambda peer: peer.restricted_key(profile="billy", without=["rak_refund_write"]),
        "missing_permissions",
        "missing some of the permissions",
    ),
    "full secret key": (lambda peer: "sk_test_" + "S" * 30, "secret_key", "full secret key"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_key_changes_nothing_and_the_old_key_keeps_working(
    any_store, any_store_owner: Actor, stripe_peer: StripePeer, case: str
) -> None:  # type: ignore[no-untyped-def]
    old = _connect_with_data(any_store_owner, stripe_peer)
    make, code, words = REFUSALS[case]
    candidate = make(stripe_peer)
    with pytest.raises(StripeKeyRejected) as refused:
        stripe_keys.rotate_stripe_key(any_store_owner, candidate)
    assert refused.value.code == code and words in refused.value.message
    if code in ("other_mode", "other_account"):
        assert "The current key stays connected." in refused.value.message
    if code == "missing_permissions":
        assert refused.value.missing == ["rak_refund_write"]  # type: ignore[attr-defined]
    if code == "secret_key":  # the very words connecting uses
        with pytest.raises(StripeKeyRejected) as on_connect:
            stripe_keys.classify_key(candidate)
        assert refused.value.message == on_connect.value.message == stripe_keys.KEY_ERRORS["secret_key"]

    assert get_secret_store().get(STRIPE_KEY_SECRET) == old
    assert _row().key_hint == old[-4:] and _row().rotated_at is None
    assert _stripe_answers() == 1  # the old key still reaches Stripe
    (row,) = _audit("stripe.rotate")
    assert (row.outcome, row.error) == ("failed", refused.value.message)
    assert candidate not in str(row.details)
    # Named by its last four once it is a restricted key at all (an sk_ key is refused before).
    assert row.details.get("key_hint") == (None if code == "secret_key" else candidate[-4:])


@pytest.mark.parametrize("check", ["account id only", "synced objects only"])
def test_each_same_account_check_refuses_another_accounts_key_on_its_own(
    instance, owner: Actor, stripe_peer: StripePeer, check: str
) -> None:  # type: ignore[no-untyped-def]
    if check == "account id only":  # nothing synced: Stripe's word on each key's account decides
        old = stripe_peer.restricted_key(profile="billy")
        stripe_keys.connect_stripe_key(owner, old)
        assert _row().account_id == "acct_billysandbox" and _stored() == {"customers": 0, "charges": 0}
    else:  # the account is not known (a key connected before accounts were kept): objects decide
        old = _connect_with_data(owner, stripe_peer)
        with session_scope() as s:
            s.exec(select(StripeConnection)).one().account_id = None
    elsewhere = stripe_peer.restricted_key(profile="billy", account="acct_elsewhere")
    with pytest.raises(StripeKeyRejected) as refused:
        stripe_keys.rotate_stripe_key(owner, elsewhere)
    assert refused.value.code == "other_account"
    assert get_secret_store().get(STRIPE_KEY_SECRET) == old
    # A key of the same account passes the very same check.
    same = stripe_peer.restricted_key(profile="billy")
    assert stripe_keys.rotate_stripe_key(owner, same).key_hint == same[-4:]


@pytest.mark.parametrize("role", ["read_only", "billing_clerk", "billing_manager"])
def test_only_the_owner_sees_checks_rotates_or_disconnects(
    instance, owner: Actor, stripe_peer: StripePeer, role: str
) -> None:  # type: ignore[no-untyped-def]
    old = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, old)
    member = member_actor(role, f"{role}@example.com")
    new = stripe_peer.restricted_key(profile="billy")
    calls = {
        "stripe.view": lambda: stripe_keys.connection_overview(member),
        "stripe.recheck": lambda: stripe_keys.recheck_permissions(member),
        "stripe.rotate": lambda: stripe_keys.rotate_stripe_key(member, new),
        "stripe.disconnect": lambda: stripe_keys.disconnect_stripe(member),
    }
    for action, call in calls.items():
        with pytest.raises(PermissionDenied) as refused:
            call()
        assert "only the Owner can" in refused.value.message
        assert [(r.outcome, r.actor_email) for r in _audit(action)] == [("denied", member.email)], action
    assert get_secret_store().get(STRIPE_KEY_SECRET) == old and stripe_keys.connection() is not None


# --- check again ----------------------------------------------------------------------------------


def test_check_again_probes_the_stored_key_and_keeps_what_stripe_says(
    any_store, any_store_owner: Actor, stripe_peer: StripePeer
) -> None:  # type: ignore[no-untyped-def]
    key = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(any_store_owner, key)
    connected_at = _row().permissions_checked_at
    # Someone edits the key in the Stripe Dashboard: invoices may no longer be written.
    stripe_peer.restricted_key(profile="billy", key=key, without=["rak_invoice_write"])
    assert stripe_keys.connection().permissions["rak_invoice_write"] is True  # type: ignore[union-attr]  # not asked yet

    view = stripe_keys.recheck_permissions(any_store_owner)
    assert view.permissions["rak_invoice_write"] is False
    states = {r["resource"]: r["state"] for r in stripe_keys.checklist(view.permissions)}
    assert states == {"Charges": "ok", "Customers": "ok", "Subscriptions": "ok", "Invoices": "missing",
                      "Refunds": "ok", "Payment Methods": "ok"}  # fmt: skip
    assert view.checked_at is not None and connected_at is not None and view.checked_at > connected_at
    assert stripe_keys.connection().permissions["rak_invoice_write"] is False  # type: ignore[union-attr]

    stripe_peer.restricted_key(profile="billy", key=key)  # fixed in Stripe
    assert all(stripe_keys.recheck_permissions(any_store_owner).permissions.values())
    rows = _audit("stripe.recheck")
    assert [(r.outcome, r.details.get("missing")) for r in rows] == [("ok", ["rak_invoice_write"]), ("ok", [])]


# --- disconnect -----------------------------------------------------------------------------------


def _poller_calls(monkeypatch: pytest.MonkeyPatch, seconds: float) -> int:
    """How often a fast event poller asked Stripe for events in `seconds`."""
    calls: list[int] = []
    monkeypatch.setattr(stripe_events, "poll_events", lambda *a, **k: calls.append(1) or {})
    poller = stripe_events.EventPoller(0.02)
    poller.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not calls:
        time.sleep(0.02)
    poller.stop()
    return len(calls)


def test_disconnecting_deletes_the_key_stops_sync_and_keeps_the_data(
    any_store, any_store_owner: Actor, stripe_peer: StripePeer, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    key = _connect_with_data(any_store_owner, stripe_peer)
    assert _poller_calls(monkeypatch, 2.0) >= 1  # connected: polling runs
    kept = _stored()
    assert kept == {"customers": 1, "charges": 1}

    stripe_keys.disconnect_stripe(any_store_owner)
    assert get_secret_store().get(STRIPE_KEY_SECRET) is None and stripe_keys.connection() is None
    assert _poller_calls(monkeypatch, 0.4) == 0  # nothing to poll: no error loop either
    with pytest.raises(StripeNotConnected):
        sync.start_sync(any_store_owner)
    with pytest.raises(StripeNotConnected) as no_key:
        _stripe_answers()
    assert "Settings → Stripe connection" in no_key.value.message
    assert _stored() == kept  # everything synced stays
    view = stripe_keys.connection_overview(any_store_owner)
    assert not view.connected and view.disconnected_by == OWNER_EMAIL and view.mode == "test"
    (row,) = _audit("stripe.disconnect")
    assert row.outcome == "ok" and row.details == {"mode": "test", "key_hint": key[-4:]}
    with pytest.raises(StripeKeyRejected) as again:
        stripe_keys.disconnect_stripe(any_store_owner)
    assert again.value.code == "not_connected"

    # Connecting again: another account's key is refused (its data would mix with what is kept) ...
    with pytest.raises(StripeKeyRejected) as other:
        stripe_keys.connect_stripe_key(
            any_store_owner, stripe_peer.restricted_key(profile="billy", account="acct_elsewhere")
        )
    assert other.value.code == "other_account" and stripe_keys.connection() is None
    # ... the same account's is taken, and Stripe answers again.
    stripe_keys.connect_stripe_key(any_store_owner, key)
    assert _stripe_answers() == 1 and stripe_keys.connection_overview(any_store_owner).disconnected_at is None


def test_a_webhook_delivery_is_refused_while_disconnected(instance, owner: Actor, stripe_peer: StripePeer) -> None:  # type: ignore[no-untyped-def]
    secret = "whsec_" + "w" * 32
    stripe_keys.connect_stripe_key(owner, stripe_peer.restricted_key(profile="billy"))
    stripe_events.set_webhook_secret(owner, secret)
    stripe_keys.disconnect_stripe(owner)
    payload = customer_event("evt_late", "late@example.com")
    with pytest.raises(stripe_events.WebhookRejected, match="disconnected"):
        stripe_events.receive_webhook(payload, signed(payload, secret))
    # An event of a kind Billy does not keep is refused too (it is read in another statement).
    other = json.dumps(
        {"id": "evt_payout", "object": "event", "type": "payout.paid", "created": int(time.time()),
         "data": {"object": {"id": "po_1", "object": "payout"}}}
    ).encode()  # fmt: skip
    with pytest.raises(stripe_events.WebhookRejected, match="disconnected"):
        stripe_events.receive_webhook(other, signed(other, secret))
    assert _stored()["customers"] == 0
    with session_scope() as s:
        assert s.exec(select(func.count()).select_from(StripeEvent)).one() == 0  # nothing recorded either
    stripe_keys.connect_stripe_key(owner, stripe_peer.restricted_key(profile="billy"))  # Stripe's retry, later
    assert stripe_events.receive_webhook(payload, signed(payload, secret)).outcome == "applied"
    assert _stored()["customers"] == 1


# --- a key Stripe rejects -------------------------------------------------------------------------


def test_a_revoked_key_is_noticed_once_mailed_once_and_cleared_by_rotating(
    any_store, any_store_owner: Actor, stripe_peer: StripePeer, smtp_catcher
) -> None:  # type: ignore[no-untyped-def]
    old = _connect_with_data(any_store_owner, stripe_peer)
    assert organization.get_organization().stripe_key_rejected is False  # type: ignore[union-attr]
    revoke(stripe_peer, old)
    for _ in range(3):  # three calls meet the 401; the Owner hears of it once
        with pytest.raises(StripeKeyUnknown):
            _stripe_answers()
    with pytest.raises(StripeKeyRejected) as rechecked:
        stripe_keys.recheck_permissions(any_store_owner)
    assert rechecked.value.code == "connected_key_rejected"

    (mail,) = _mails(smtp_catcher)
    assert mail.to == OWNER_EMAIL and "Stripe rejected Billy's key" in mail.subject
    assert f"ending {old[-4:]}" in mail.text and old not in mail.text + (mail.html or "")
    assert any(link.endswith("/settings/stripe") for link in mail.links)
    assert organization.get_organization().stripe_key_rejected is True  # type: ignore[union-attr]
    assert stripe_keys.connection().rejected is True  # type: ignore[union-attr]  # the poller rests
    (noted,) = _audit("stripe.key_rejected")
    assert noted.details == {"key_hint": old[-4:], "emailed": [OWNER_EMAIL]} and noted.actor_email == "system"

    new = stripe_peer.restricted_key(profile="billy")
    stripe_keys.rotate_stripe_key(any_store_owner, new)
    assert organization.get_organization().stripe_key_rejected is False  # type: ignore[union-attr]
    assert _stripe_answers() == 1 and len(_mails(smtp_catcher)) == 1


def test_a_401_to_a_key_already_replaced_does_not_flag_the_new_one(
    instance, owner: Actor, stripe_peer: StripePeer
) -> None:  # type: ignore[no-untyped-def]
    old = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, old)
    stale = StripeGateway()
    stale._key_provider = lambda: old  # a call that read the key just before a rotation
    stripe_keys.rotate_stripe_key(owner, stripe_peer.restricted_key(profile="billy"))
    revoke(stripe_peer, old)
    with pytest.raises(StripeKeyUnknown):
        stale.list_page("customers")
    assert _row().rejected_at is None


# --- the page: state and the form's route ---------------------------------------------------------


def _cookie(email: str, password: str) -> str:
    tokens = identity.login(email, password, "127.0.0.1", "pytest-tab")
    return f"{identity.ACCESS_COOKIE}={tokens.access}"


def test_the_page_shows_mode_and_last_four_never_the_key_and_only_to_the_owner(
    instance, owner: Actor, stripe_peer: StripePeer
) -> None:  # type: ignore[no-untyped-def]
    key = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, key)
    viewer = member_actor("read_only", "viewer@example.com")
    with event_pipeline() as pipeline:
        tab = pipeline.tab(_cookie(OWNER_EMAIL, OWNER_PASSWORD), path="/settings/stripe")
        sent = tab.send(StripeConnectionState, "load")
        assert (sent.last(StripeConnectionState, "mode"), sent.last(StripeConnectionState, "key_hint")) == (
            "test",
            key[-4:],
        )
        assert sent.last(StripeConnectionState, "connected_by") == OWNER_EMAIL
        assert [r["state"] for r in sent.last(StripeConnectionState, "checklist")] == ["ok"] * 6
        checked = tab.send(StripeConnectionState, "recheck")
        assert checked.last(StripeConnectionState, "message") == "Checked just now: the key has all six permissions."
        assert key not in sent.text + checked.text

        other = pipeline.tab(_cookie(viewer.email, "another-long-password"), path="/settings/stripe")
        refused = other.send(StripeConnectionState, "load")
        assert refused.last(StripeConnectionState, "refused") is True
        assert "only the Owner can" in refused.last(StripeConnectionState, "error")
        assert key[-4:] not in refused.text
        attempt = other.send(StripeConnectionState, "disconnect")  # an event forged past the page
        assert "only the Owner can" in attempt.last(StripeConnectionState, "message")
    assert stripe_keys.connection() is not None


def test_every_member_s_banner_flag_follows_a_rejected_key(
    instance, owner: Actor, stripe_peer: StripePeer, smtp_catcher
) -> None:  # type: ignore[no-untyped-def]
    key = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, key)
    member_actor("billing_clerk", "clerk@example.com")
    with event_pipeline() as pipeline:
        tabs = {
            "owner": pipeline.tab(_cookie(OWNER_EMAIL, OWNER_PASSWORD)),
            "clerk": pipeline.tab(_cookie("clerk@example.com", "another-long-password")),
        }
        for tab in tabs.values():
            assert tab.send(SessionState, "require_member").last(SessionState, "stripe_key_rejected") is False
        revoke(stripe_peer, key)
        with pytest.raises(StripeKeyUnknown):
            _stripe_answers()
        for who, tab in tabs.items():
            sent = tab.send(SessionState, "require_member")
            assert sent.last(SessionState, "stripe_key_rejected") is True, who
            assert sent.last(SessionState, "is_owner") is (who == "owner")  # which words the banner shows
        stripe_keys.rotate_stripe_key(owner, stripe_peer.restricted_key(profile="billy"))
        assert tabs["clerk"].send(SessionState, "require_member").last(SessionState, "stripe_key_rejected") is False


@pytest.fixture
def client(instance, monkeypatch: pytest.MonkeyPatch) -> TestClient:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sync.background_sync, "start", lambda *a, **k: True)  # the route's, not the sync's, test
    return TestClient(build_api(), base_url="http://localhost:3000", follow_redirects=False)


def _flash(response: Any) -> dict[str, Any]:
    assert response.status_code == 303 and response.headers["location"].startswith("/settings/stripe?flash=")
    return flash.unpack(response.headers["location"].split("flash=", 1)[1])


def test_the_form_route_rotates_refuses_in_words_and_never_echoes_the_key(
    client: TestClient, owner: Actor, stripe_peer: StripePeer
) -> None:
    old = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, old)
    assert owner.user_id is not None
    client.cookies.set(identity.ACCESS_COOKIE, identity.start_session(owner.user_id, "127.0.0.1", "pytest").access)

    lacking = stripe_peer.restricted_key(profile="billy", without=["rak_charge_read"])
    refused = client.post("/api/settings/stripe-key", data={"key": lacking}, headers=ORIGIN)
    data = _flash(refused)
    assert data["code"] == "missing_permissions" and data["granted"]["rak_charge_read"] is False
    assert lacking not in refused.headers["location"] + refused.text + str(data)

    forged = client.post("/api/settings/stripe-key", data={"key": stripe_peer.restricted_key(profile="billy")},
                         headers={"origin": "https://evil.example"})  # fmt: skip
    assert forged.status_code == 403 and get_secret_store().get(STRIPE_KEY_SECRET) == old

    new = stripe_peer.restricted_key(profile="billy")
    done = client.post("/api/settings/stripe-key", data={"key": new}, headers=ORIGIN)
    data = _flash(done)
    assert data["code"] == "rotated" and f"ending {new[-4:]}" in data["message"] and data["kind"] == "info"
    assert new not in done.headers["location"] + done.text + str(data)
    assert get_secret_store().get(STRIPE_KEY_SECRET) == new

    stripe_keys.disconnect_stripe(owner)  # after a disconnection the same form connects again
    again = _flash(client.post("/api/settings/stripe-key", data={"key": new}, headers=ORIGIN))
    assert again["code"] == "connected" and stripe_keys.connection() is not None


def test_the_readiness_check_is_a_call_that_notices_a_revoked_key_too(
    instance, owner: Actor, stripe_peer: StripePeer, smtp_catcher
) -> None:  # type: ignore[no-untyped-def]
    from services import health

    key = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, key)
    revoke(stripe_peer, key)
    assert health._reach_stripe() == health.KEY_REJECTED  # Stripe answered: the instance stays in service
    assert _row().rejected_at is not None and len(_mails(smtp_catcher)) == 1  # noticed with no one signed in
