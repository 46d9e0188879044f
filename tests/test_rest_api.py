"""The REST API /api/v1 (issue 13), driven over ASGI through the same Starlette app Reflex mounts:
bearer agent tokens and access tokens, the dashboard's refusals as JSON errors, idempotent
writes (one refund in the sandbox however often a request is repeated), cursors, rate limits
and audit rows that say `api` and name the token."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from billy_app.api.bearer import actor_from_token
from billy_app.api.routes import build_api
from billy_app.api.v1 import rate
from services import agent_tokens, api_idempotency, billing, clock, identity, stripe_keys
from services.agent_tokens import ScopeRequest
from services.db import session_scope
from services.models import AuditEntry
from services.permissions import Actor, Source
from tests.conftest import counts_only_late, member_actor
from tests.stripe_helpers import make_charge, make_team_subscription_and_open_invoice, sync_lists

V1 = "/api/v1"


@pytest.fixture
def api(any_store) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    rate.use_limit(rate.CallerLimit())  # counts start afresh for every test
    with TestClient(build_api(), base_url="http://localhost:3000") as client:
        yield client
    rate.use_limit(None)


@pytest.fixture
def charges(any_store, any_store_owner: Actor, stripe_peer) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The demo key connected, and two charges synced: Order #5678 ($45.99) and a $5,000 one."""
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    small = make_charge(stripe_peer, 4599, description="Order #5678")
    big = make_charge(stripe_peer, 500_000, description="Order #9999")
    sync_lists()
    return {"small": small["id"], "big": big["id"], "customer": small["customer"]}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def token_for(actor: Actor, **scope: Any) -> tuple[str, str]:
    """(secret, token id) of a new agent token of `actor`."""
    issued = agent_tokens.issue_token(actor, "Test script", ScopeRequest(**scope))
    return issued.secret, issued.id


def access_token_for(actor: Actor) -> str:
    return identity.start_session(actor.user_id or 0, "127.0.0.1", "pytest").access


def audit_rows(action: str) -> list[AuditEntry]:
    with session_scope() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def stripe_refunds(stripe_peer, charge_id: str) -> list[int]:  # type: ignore[no-untyped-def]
    return [r.amount for r in stripe_peer.secret_client().v1.refunds.list(params={"charge": charge_id}).data]


def test_a_clerk_refunds_within_the_cap_and_is_refused_over_it_with_the_cap_named(api, charges, stripe_peer) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", "clerk@example.com")
    secret, token_id = token_for(clerk)

    done = api.post(
        f"{V1}/refunds", headers=bearer(secret), json={"charge_id": charges["small"], "note": "order #5678"}
    )
    assert done.status_code == 201, done.text
    body = done.json()
    assert (body["amount"], body["currency"], body["replayed"]) == (4599, "usd", False)
    assert body["refund_id"].startswith("re_") and body["charge"]["amount_refunded"] == 4599
    assert stripe_refunds(stripe_peer, charges["small"]) == [4599]

    refused = api.post(f"{V1}/refunds", headers=bearer(secret), json={"charge_id": charges["big"], "amount": 500_000})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "refund_cap_exceeded" and "$100.00" in error["message"]
    assert stripe_refunds(stripe_peer, charges["big"]) == []

    ok, denied = audit_rows("charges.refund")
    assert (ok.outcome, ok.source, ok.details["agent_token"], ok.details["client"]) == (
        "ok",
        "api",
        token_id,
        "Test script",
    )
    assert (denied.outcome, denied.source, denied.details["agent_token"]) == ("denied", "api", token_id)


def test_read_only_reads_and_is_refused_every_write(api, charges) -> None:  # type: ignore[no-untyped-def]
    viewer = member_actor("read_only", "viewer@example.com")
    secret, token_id = token_for(viewer)
    headers = bearer(secret)
    assert api.get(f"{V1}/charges", headers=headers).status_code == 200
    assert api.get(f"{V1}/charges/{charges['small']}", headers=headers).json()["order_number"] == "5678"
    # Each read through the API is on record, with the token and what it named.
    reads = [(r.source, r.details["call"], r.target_ids, r.details["agent_token"]) for r in audit_rows("agents.read")]
    assert reads == [
        ("api", "GET /charges", [], token_id),
        ("api", "GET /charges/{charge_id}", [charges["small"]], token_id),
    ]
    writes = [
        ("post", f"{V1}/refunds", {"charge_id": charges["small"], "amount": 100}),
        ("post", f"{V1}/refund-requests", {"charge_id": charges["big"], "note": "please"}),
        ("patch", f"{V1}/customers/{charges['customer']}", {"email": "new@example.com"}),
        ("post", f"{V1}/invoices/in_123/void", None),
        ("post", f"{V1}/subscriptions/sub_123/cancel", {"at_period_end": True}),
    ]
    for method, path, body in writes:
        answer = api.request(method, path, headers=headers, json=body)
        assert answer.status_code == 403, (path, answer.text)
        assert (
            answer.json()["error"]["code"] == "permission_denied" and "Read Only" in answer.json()["error"]["message"]
        )
    assert {r.source for r in audit_rows("charges.refund")} == {"api"}


def test_missing_revoked_and_tampered_tokens_are_401_and_cookies_are_not_accepted(  # type: ignore[no-untyped-def]
    api, any_store_owner
) -> None:
    clerk = member_actor("billing_clerk", "clerk@example.com")
    secret, token_id = token_for(clerk)
    assert api.get(f"{V1}/me", headers=bearer(secret)).status_code == 200

    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for headers in (
        {},
        bearer(tampered),
        bearer("billy_at_short"),
        bearer("eyJ.not.a-jwt"),
        {"Authorization": "Basic x"},
    ):
        answer = api.get(f"{V1}/me", headers=headers)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "not_authenticated"
        assert answer.headers["www-authenticate"].startswith("Bearer")

    # The dashboard's access cookie is ambient in a browser: this door ignores it.
    api.cookies.set(identity.ACCESS_COOKIE, access_token_for(any_store_owner))
    assert api.get(f"{V1}/me").status_code == 401
    api.cookies.clear()

    agent_tokens.revoke_token(clerk, token_id)
    revoked = api.get(f"{V1}/me", headers=bearer(secret))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


def test_an_expired_token_is_401(api) -> None:  # type: ignore[no-untyped-def]
    secret, _ = token_for(member_actor("billing_clerk", "clerk@example.com"), expires_in_days=1)
    assert api.get(f"{V1}/me", headers=bearer(secret)).status_code == 200
    with clock.travel(timedelta(days=1, seconds=1)):
        expired = api.get(f"{V1}/me", headers=bearer(secret))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]


def test_an_unexpected_failure_is_a_json_500_without_a_traceback(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(billing, "search_customers", broken)
    headers = bearer(token_for(member_actor("read_only", "viewer@example.com"))[0])
    answer = api.get(f"{V1}/customers", headers=headers)
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "internal_error"
    assert "secret internals" not in answer.text and "Traceback" not in answer.text


def test_an_access_token_acts_as_its_member(api, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    headers = bearer(access_token_for(any_store_owner))
    me = api.get(f"{V1}/me", headers=headers).json()
    assert me == {
        "member_email": "owner@example.com",
        "role": "owner",
        "role_label": "Owner",
        "token_id": None,
        "client_name": None,
        "scope": "as your role",
    }
    refused = api.delete(f"{V1}/me/token", headers=headers)  # only an agent token signs itself out
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"


def test_me_describes_the_token_and_delete_me_token_signs_it_out(api) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", "clerk@example.com")
    secret, token_id = token_for(clerk, read_only=True)
    me = api.get(f"{V1}/me", headers=bearer(secret)).json()
    assert me == {
        "member_email": "clerk@example.com",
        "role": "billing_clerk",
        "role_label": "Billing Clerk",
        "token_id": token_id,
        "client_name": "Test script",
        "scope": "read-only",
    }
    assert api.delete(f"{V1}/me/token", headers=bearer(secret)).status_code == 204
    assert api.get(f"{V1}/me", headers=bearer(secret)).status_code == 401
    (row,) = audit_rows("agents.revoke")
    assert (row.outcome, row.source, row.details["agent_token"]) == ("ok", "api", token_id)


def test_the_same_idempotency_key_makes_one_refund_and_another_body_is_refused(  # type: ignore[no-untyped-def]
    api, charges, stripe_peer
) -> None:
    clerk = member_actor("billing_clerk", "clerk@example.com")
    secret, _ = token_for(clerk)
    headers = {**bearer(secret), "Idempotency-Key": "refund-5678-once"}
    request = {"charge_id": charges["small"], "amount": 1000, "reason": "requested_by_customer"}

    first = api.post(f"{V1}/refunds", headers=headers, json=request)
    again = api.post(f"{V1}/refunds", headers=headers, json=request)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert stripe_refunds(stripe_peer, charges["small"]) == [1000]
    assert len([r for r in audit_rows("charges.refund") if r.outcome == "ok"]) == 1  # the service ran once

    other = api.post(f"{V1}/refunds", headers=headers, json={**request, "amount": 2000})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert stripe_refunds(stripe_peer, charges["small"]) == [1000]

    # Keys are per caller: another token's same key is another request.
    other_token, _ = token_for(clerk)
    theirs = api.post(
        f"{V1}/refunds", headers={**bearer(other_token), "Idempotency-Key": "refund-5678-once"}, json=request
    )
    assert theirs.status_code == 201 and theirs.json()["refund_id"] != first.json()["refund_id"]
    assert sorted(stripe_refunds(stripe_peer, charges["small"])) == [1000, 1000]

    # A refusal is an answer too: repeating it repeats the refusal, and nothing is refunded.
    over = {"charge_id": charges["big"], "amount": 20_000}
    cap_key = {**bearer(secret), "Idempotency-Key": "over-the-cap"}
    assert [api.post(f"{V1}/refunds", headers=cap_key, json=over).status_code for _ in range(2)] == [403, 403]
    assert stripe_refunds(stripe_peer, charges["big"]) == []


def test_a_key_stays_open_to_its_request_after_an_open_outcome_and_is_free_after_a_day(  # type: ignore[no-untyped-def]
    api, any_store_owner, stripe_peer
) -> None:
    charge = make_charge(stripe_peer, 4599)  # in Stripe, but Billy's key is not connected yet
    secret, _ = token_for(member_actor("billing_clerk", "clerk@example.com"))
    headers = {**bearer(secret), "Idempotency-Key": "retry-me"}
    request = {"charge_id": charge["id"], "amount": 500}

    down = api.post(f"{V1}/refunds", headers=headers, json=request)
    assert down.status_code == 503 and down.headers["retry-after"]
    other = api.post(f"{V1}/refunds", headers=headers, json={**request, "amount": 600})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"

    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    sync_lists()
    retried = api.post(f"{V1}/refunds", headers=headers, json=request)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert api.post(f"{V1}/refunds", headers=headers, json=request).headers["idempotent-replayed"] == "true"
    assert stripe_refunds(stripe_peer, charge["id"]) == [500]

    with clock.travel(timedelta(hours=25)):  # kept for 24 hours: then the key names a new request
        later = api.post(f"{V1}/refunds", headers=headers, json={**request, "amount": 600})
    assert later.status_code == 201 and later.json()["refund_id"] != retried.json()["refund_id"]
    assert sorted(stripe_refunds(stripe_peer, charge["id"])) == [500, 600]


def test_a_repeat_while_the_first_request_runs_is_refused(api) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", "clerk@example.com")
    secret, _ = token_for(clerk)
    caller = actor_from_token(secret, Source.API)
    seen: list[Any] = []

    def first_request(_stripe_key: str) -> tuple[int, dict[str, Any]]:
        # While the first request holds the key, the same request arrives over HTTP.
        seen.append(
            api.post(
                f"{V1}/refunds",
                headers={**bearer(secret), "Idempotency-Key": "slow-one"},
                json={"charge_id": "ch_abc", "amount": 100},
            )
        )
        return 201, {"done": True}

    worker = threading.Thread(
        target=lambda: api_idempotency.run(caller, "slow-one", "digest-of-the-first", first_request)
    )
    worker.start()
    worker.join(30)
    (during,) = seen
    assert during.status_code == 409 and during.json()["error"]["code"] == "idempotency_key_in_use"


def test_owner_only_resources_refuse_a_manager_and_serve_the_owner(api, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    manager = member_actor("billing_manager", "manager@example.com")
    headers = bearer(token_for(manager)[0])
    for method, path in (("get", "/team"), ("get", "/audit"), ("post", "/audit/verify")):
        refused = api.request(method, f"{V1}{path}", headers=headers)
        assert refused.status_code == 403, path
        assert "only the Owner" in refused.json()["error"]["message"]

    owner_headers = bearer(token_for(any_store_owner)[0])
    team = api.get(f"{V1}/team", headers=owner_headers).json()
    assert sorted(m["email"] for m in team["members"]) == ["manager@example.com", "owner@example.com"]
    log = api.get(f"{V1}/audit", headers=owner_headers, params={"source": "api", "outcome": "denied"}).json()
    assert {row["actor_email"] for row in log["items"]} == {"manager@example.com"}
    assert all(row["details"]["agent_token"] for row in log["items"])
    verified = api.post(f"{V1}/audit/verify", headers=owner_headers).json()
    assert verified["ok"] is True and verified["rows_checked"] > 0


def test_lists_page_by_cursor(api, charges) -> None:  # type: ignore[no-untyped-def]
    headers = bearer(access_token_for(member_actor("read_only", "viewer@example.com")))
    first = api.get(f"{V1}/customers", headers=headers, params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["has_more"] is True and first["total"]["count"] == 2
    second = api.get(f"{V1}/customers", headers=headers, params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert len(second["items"]) == 1 and second["has_more"] is False and second["next_cursor"] is None
    assert first["items"][0]["id"] != second["items"][0]["id"]

    page = api.get(f"{V1}/charges", headers=headers, params={"sort": "amount_desc", "limit": 1}).json()
    assert [c["id"] for c in page["items"]] == [charges["big"]] and page["has_more"]
    rest = api.get(
        f"{V1}/charges", headers=headers, params={"sort": "amount_desc", "limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [c["id"] for c in rest["items"]] == [charges["small"]] and not rest["has_more"]
    stale = api.get(f"{V1}/charges", headers=headers, params={"cursor": "newest:x:y"})
    assert stale.status_code == 422 and "no longer valid" in stale.json()["error"]["message"]


def test_lists_wait_for_a_total_too_dear_for_the_dashboards_page(api, charges, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A page counts its total for at most a few milliseconds (the dashboard shows the rows and the
    total after); a program reads its answer whole, so the API waits for the count."""
    from services import reports

    counts_only_late(monkeypatch)
    headers = bearer(access_token_for(member_actor("read_only", "viewer@example.com")))
    for resource, count in (("charges", 2), ("customers", 2), ("subscriptions", 0), ("invoices", 0)):
        answer = api.get(f"{V1}/{resource}", headers=headers, params={"limit": 1}).json()
        assert answer["total"] == {"count": count, "at_least": False}, resource
    # The dashboard's page of charges is sent without it (and the total follows), the API's with it.
    succeeded = reports.ChargeFilters(status="succeeded")
    assert reports.search_charges(member_actor("read_only", "other@example.com"), succeeded).total is None


def test_bad_requests_get_json_errors_never_a_traceback(api) -> None:  # type: ignore[no-untyped-def]
    headers = bearer(token_for(member_actor("billing_clerk", "clerk@example.com"))[0])
    for body in ({"charge_id": "not-a-charge"}, {"charge_id": "ch_1", "amount": "lots"}, {"charge_id": "ch_1", "x": 1}):
        answer = api.post(f"{V1}/refunds", headers=headers, json=body)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request"
        assert answer.json()["error"]["fields"] and "Traceback" not in answer.text
    assert api.get(f"{V1}/customers", headers=headers, params={"limit": 0}).status_code == 422
    missing = api.get(f"{V1}/charges/ch_missing", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    nowhere = api.get(f"{V1}/nowhere", headers=headers)
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
    wrong_method = api.put(f"{V1}/refunds", headers=headers)
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["allow"]
    not_connected = api.post(f"{V1}/refunds", headers=headers, json={"charge_id": "ch_1"})
    assert not_connected.status_code == 503 and not_connected.json()["error"]["code"] == "stripe_not_connected"


def test_requests_are_limited_per_token(api) -> None:  # type: ignore[no-untyped-def]
    rate.use_limit(rate.CallerLimit("3/minute"))
    clerk = member_actor("billing_clerk", "clerk@example.com")
    first, second = token_for(clerk)[0], token_for(clerk)[0]
    statuses = [api.get(f"{V1}/me", headers=bearer(first)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = api.get(f"{V1}/me", headers=bearer(first))
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
    assert api.get(f"{V1}/me", headers=bearer(second)).status_code == 200  # another token has its own count


def test_customer_changes_are_refused_field_by_field(api, charges) -> None:  # type: ignore[no-untyped-def]
    headers = bearer(token_for(member_actor("billing_clerk", "clerk@example.com"))[0])
    path = f"{V1}/customers/{charges['customer']}"
    refused = api.patch(path, headers=headers, json={"name": "Janet Smith"})
    assert refused.status_code == 403 and "not their name" in refused.json()["error"]["message"]
    changed = api.patch(path, headers=headers, json={"email": "jane.new@example.com"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["customer"]["email"] == "jane.new@example.com" and changed.json()["fields"] == ["email"]
    detail = api.get(path, headers=headers).json()
    assert detail["customer"]["email"] == "jane.new@example.com"
    assert detail["editable_fields"] == ["address", "email"]
    assert [(r.outcome, r.source) for r in audit_rows("customers.update_contact")] == [("ok", "api")]


def test_exports_stream_csv_within_the_token_scope(api, charges) -> None:  # type: ignore[no-untyped-def]
    viewer = member_actor("read_only", "viewer@example.com")
    secret, token_id = token_for(viewer, read_only=True)
    answer = api.get(f"{V1}/exports/charges.csv", headers=bearer(secret), params={"sort": "amount_desc"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.strip().splitlines()
    assert lines[0].startswith("Charge ID,") and len(lines) == 3 and lines[1].startswith(charges["big"])
    (row,) = audit_rows("charges.export")
    assert (row.outcome, row.source, row.details["agent_token"], row.details["rows"]) == ("ok", "api", token_id, 2)

    searcher, _ = token_for(viewer, actions=("charges.search",))  # a scope without exports
    refused = api.get(f"{V1}/exports/charges.csv", headers=bearer(searcher))
    assert refused.status_code == 403 and "not allowed 'charges.export'" in refused.json()["error"]["message"]


def test_the_openapi_document_is_served_from_the_code(api) -> None:  # type: ignore[no-untyped-def]
    document = api.get(f"{V1}/openapi.json").json()
    assert document["servers"] == [{"url": "/api/v1"}]
    assert {"/refunds", "/customers/{customer_id}", "/audit/verify", "/me/token"} <= set(document["paths"])
    assert "Idempotency-Key" in {p["name"] for p in document["paths"]["/refunds"]["post"]["parameters"]}
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


DAY = 86_400


def test_subscriptions_invoices_and_the_overdue_report(api, any_store_owner, stripe_peer, sandbox) -> None:  # type: ignore[no-untyped-def]
    """One subscription and one invoice by id for any role; a Manager's change; days overdue."""
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    client = stripe_peer.secret_client()
    jane = client.v1.customers.create(params={"name": "Jane Smith", "email": "jane@example.com", "source": "tok_visa"})
    price, subscription, invoice = make_team_subscription_and_open_invoice(stripe_peer, jane.id)
    # Due 10 days after finalizing, which came a moment after `created`: half a day's margin keeps
    # it 3 whole days overdue however slow the machine was between the two.
    sandbox.backdate(invoice.id, int(time.time()) - 13 * DAY - DAY // 2)
    sync_lists()

    viewer = bearer(token_for(member_actor("read_only", "viewer@example.com"))[0])
    sub = api.get(f"{V1}/subscriptions/{subscription.id}", headers=viewer).json()
    assert sub["status"] == "active" and sub["mrr"]["amount"] == 4900
    assert [(i["price_id"], i["product"], i["quantity"], i["interval"]) for i in sub["items"]] == [
        (price.id, "Team", 1, "month")
    ]
    inv = api.get(f"{V1}/invoices/{invoice.id}", headers=viewer).json()
    assert (inv["status"], inv["days_overdue"], inv["collection_method"]) == ("overdue", 3, "send_invoice")
    assert [(line["description"], line["amount"]["amount"]) for line in inv["lines"]] == [("Work", 12_000)]
    overdue = api.get(f"{V1}/reports/overdue-invoices", headers=viewer).json()
    assert [(o["invoice"]["id"], o["days_overdue"]) for o in overdue["page"]["items"]] == [(invoice.id, 3)]
    assert overdue["totals"][0]["overdue"]["amount"] == 12_000
    report = api.get(f"{V1}/reports/failed-payments", headers=viewer, params={"preset": "last_30_days"}).json()
    assert [g["reason"] for g in report["groups"]] == ["expired_card", "insufficient_funds", "fraud", "other"]

    cancel = {"at_period_end": True}
    clerk = bearer(token_for(member_actor("billing_clerk", "clerk@example.com"))[0])
    refused = api.post(f"{V1}/subscriptions/{subscription.id}/cancel", headers=clerk, json=cancel)
    assert refused.status_code == 403 and "Billing Clerk" in refused.json()["error"]["message"]
    manager = bearer(token_for(member_actor("billing_manager", "manager@example.com"))[0])
    done = api.post(f"{V1}/subscriptions/{subscription.id}/cancel", headers=manager, json=cancel)
    assert done.status_code == 200 and done.json()["status"] == "active", done.text
    after = api.get(f"{V1}/subscriptions/{subscription.id}", headers=viewer).json()
    assert after["cancel_at_period_end"] is True
    assert client.v1.subscriptions.retrieve(subscription.id).cancel_at_period_end is True
