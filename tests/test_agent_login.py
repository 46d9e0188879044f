"""`agent-billy login`, server side (issue 13): the approval page's form post and the CLI's code
exchange, called over HTTP as the browser and the CLI do (the real CLI drives this end to end in
tests/browser). A code goes only to a loopback listener, is single use, expires, and is useless
without the PKCE verifier; the token it yields acts as the approving member within their role."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from billy_app.api import flash
from billy_app.api.bearer import actor_from_token
from billy_app.api.routes import build_api
from services import agent_login, agent_tokens, identity
from services.db import session_scope
from services.models import AuditEntry
from services.permissions import Actor, Source, refund_caps
from tests.conftest import member_actor

ORIGIN = {"origin": "http://localhost:3000"}
LISTENER = "http://127.0.0.1:53682/callback"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture
def client(any_store) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(build_api(), base_url="http://localhost:3000", follow_redirects=False)


def _signed_in(client: TestClient, actor: Actor) -> None:
    client.cookies.set(identity.ACCESS_COOKIE, identity.start_session(actor.user_id or 0, "127.0.0.1", "pytest").access)


def _approve(client: TestClient, challenge: str, **form: str) -> str:
    fields = {
        "client_name": "Claude Desktop",
        "redirect_uri": LISTENER,
        "state": "state-1234567890",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "decision": "approve",
        "access": "role",
        "refund_cap": "",
        "expires_in_days": "30",
        **form,
    }
    response = client.post("/api/agent/connect", headers=ORIGIN, data=fields)
    assert response.status_code == 303
    return response.headers["location"]


def _code(location: str) -> str:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == LISTENER
    query = parse_qs(parts.query)
    assert query["state"] == ["state-1234567890"]
    return query["code"][0]


def test_a_clerk_approves_and_the_cli_gets_a_token_that_acts_as_her(client: TestClient, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", "clerk@example.com")
    _signed_in(client, clerk)
    verifier, challenge = _pkce()
    code = _code(_approve(client, challenge, refund_cap="50"))

    client.cookies.clear()  # the CLI has no cookies
    answer = client.post("/api/agent/token", json={"code": code, "code_verifier": verifier, "redirect_uri": LISTENER})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["member_email"] == "clerk@example.com" and body["role_label"] == "Billing Clerk"
    assert body["client_name"] == "Claude Desktop" and body["expires_at"]
    agent = actor_from_token(body["token"], Source.AGENT)
    assert agent.user_id == clerk.user_id and agent.token_id == body["token_id"]
    assert refund_caps(agent) == {"usd": 5000}  # the $50 chosen on the page, below the Clerk's $100

    again = client.post("/api/agent/token", json={"code": code, "code_verifier": verifier, "redirect_uri": LISTENER})
    assert again.status_code == 400 and "already used" in again.json()["error"]["message"]
    with session_scope() as s:
        issued = s.exec(select(AuditEntry).where(AuditEntry.action == "agents.issue")).one()
    assert (
        issued.actor_email == "clerk@example.com" and issued.outcome == "ok" and issued.target_ids == [agent.token_id]
    )


def test_the_code_is_useless_without_the_verifier_or_at_another_listener(client: TestClient, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    _signed_in(client, any_store_owner)
    verifier, challenge = _pkce()
    code = _code(_approve(client, challenge))
    wrong = client.post("/api/agent/token", json={"code": code, "code_verifier": _pkce()[0], "redirect_uri": LISTENER})
    assert wrong.status_code == 400 and "proof key" in wrong.json()["error"]["message"]
    moved = client.post(
        "/api/agent/token",
        json={"code": code, "code_verifier": verifier, "redirect_uri": "http://127.0.0.1:9/callback"},
    )
    assert moved.status_code == 400 and "another listener" in moved.json()["error"]["message"]
    forged = client.post(
        "/api/agent/token", json={"code": code[:-4] + "AAAA", "code_verifier": verifier, "redirect_uri": LISTENER}
    )
    assert forged.status_code == 400 and "not valid" in forged.json()["error"]["message"]
    assert agent_tokens.list_tokens(any_store_owner) == []  # nothing was issued


def test_an_expired_code_is_refused(client: TestClient, any_store_owner, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _signed_in(client, any_store_owner)
    verifier, challenge = _pkce()
    code = _code(_approve(client, challenge))
    monkeypatch.setattr(agent_login, "CODE_SECONDS", -1)  # as if two minutes had passed
    late = client.post("/api/agent/token", json={"code": code, "code_verifier": verifier, "redirect_uri": LISTENER})
    assert late.status_code == 400 and "took too long" in late.json()["error"]["message"]


@pytest.mark.parametrize(
    ("redirect_uri", "words"),
    [
        ("https://evil.example/callback", "not local"),
        ("http://127.0.0.1.evil.example:80/cb", "not local"),
        ("http://localhost/callback", "incomplete"),
        ("myapp://callback", "not local"),
        ("http://user@127.0.0.1:53682/callback", "not local"),
        ("http://127.0.0.1:notaport/callback", "incomplete"),
    ],
)
def test_a_code_never_goes_to_anything_but_a_local_listener(  # type: ignore[no-untyped-def]
    client: TestClient, any_store_owner, redirect_uri: str, words: str
) -> None:
    _signed_in(client, any_store_owner)
    location = _approve(client, _pkce()[1], redirect_uri=redirect_uri)
    assert location.startswith("/connect-agent?") and "code=" not in location
    assert words in _flash(location)


def _flash(location: str) -> str:
    return str(flash.unpack(parse_qs(urlsplit(location).query)["flash"][0]).get("message", ""))


def test_deny_sends_access_denied_and_no_code(client: TestClient, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    _signed_in(client, any_store_owner)
    location = _approve(client, _pkce()[1], decision="deny")
    query = parse_qs(urlsplit(location).query)
    assert query == {"error": ["access_denied"], "state": ["state-1234567890"]}


def test_a_cap_above_the_role_is_refused_on_the_page(client: TestClient, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    _signed_in(client, member_actor("billing_clerk", "clerk@example.com"))
    location = _approve(client, _pkce()[1], refund_cap="500")
    assert location.startswith("/connect-agent?") and "above your role" in _flash(location)


def test_a_daily_budget_chosen_on_the_page_is_the_tokens_own(client: TestClient, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    clerk = member_actor("billing_clerk", "clerk@example.com")
    _signed_in(client, clerk)
    verifier, challenge = _pkce()
    code = _code(_approve(client, challenge, daily_budget="150.00"))
    client.cookies.clear()
    body = client.post(
        "/api/agent/token", json={"code": code, "code_verifier": verifier, "redirect_uri": LISTENER}
    ).json()
    agent = actor_from_token(body["token"], Source.AGENT)
    assert agent.scope is not None and agent.scope.daily_budgets == {"usd": 150_00}
    (view,) = agent_tokens.list_tokens(clerk)
    assert "$150.00 a day" in view.scope_words  # what Settings → Agents shows


def test_a_daily_budget_above_the_members_own_is_refused_on_the_page(client: TestClient, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    _signed_in(client, member_actor("billing_clerk", "clerk@example.com"))
    location = _approve(client, _pkce()[1], daily_budget="600")  # the Clerk's own budget is $500
    assert location.startswith("/connect-agent?") and "above your own ($500.00 in USD)" in _flash(location)
    bad = _approve(client, _pkce()[1], daily_budget="lots")
    assert bad.startswith("/connect-agent?") and "Type the amount in digits" in _flash(bad)  # not a 500


def test_signed_out_or_cross_site_approvals_get_nothing(client: TestClient, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    _, challenge = _pkce()
    fields = {"redirect_uri": LISTENER, "state": "state-1234567890", "code_challenge": challenge}
    signed_out = client.post("/api/agent/connect", headers=ORIGIN, data={**fields, "decision": "approve"})
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login?")
    back = parse_qs(urlsplit(signed_out.headers["location"]).query)["next"][0]
    assert back.startswith("/connect-agent?") and "code_challenge=" + challenge in back  # back to the same request
    _signed_in(client, any_store_owner)
    cross = client.post(
        "/api/agent/connect", headers={"origin": "https://evil.example"}, data={**fields, "decision": "approve"}
    )
    assert cross.status_code == 403


def test_a_token_limited_to_refunds_looks_things_up_and_refunds_but_nothing_else(  # type: ignore[no-untyped-def]
    client: TestClient, any_store_owner
) -> None:
    manager = member_actor("billing_manager", "manager@example.com")
    _signed_in(client, manager)
    verifier, challenge = _pkce()
    location = _approve(client, challenge, access="some")  # nothing ticked
    assert location.startswith("/connect-agent?") and "Tick at least one" in _flash(location)

    fields = {
        "client_name": "Refund bot",
        "redirect_uri": LISTENER,
        "state": "state-1234567890",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "decision": "approve",
        "access": "some",
        "group": ["refunds", "no-such-group"],
        "expires_in_days": "7",
    }
    code = _code(client.post("/api/agent/connect", headers=ORIGIN, data=fields).headers["location"])
    body = client.post(
        "/api/agent/token", json={"code": code, "code_verifier": verifier, "redirect_uri": LISTENER}
    ).json()
    scope = actor_from_token(body["token"], Source.AGENT).scope
    assert scope is not None and scope.actions is not None
    assert {"charges.refund", "charges.view", "customers.search", "reports.failed_payments"} <= scope.actions
    assert not scope.actions & {"invoices.remind", "customers.update", "subscriptions.cancel", "agents.issue"}
