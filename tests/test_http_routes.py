"""The HTTP form routes, called directly as an attacker or a script would."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from billy_app.api import flash
from billy_app.api.routes import build_api
from services import health, identity, stripe_keys, sync
from services.config import get_settings
from services.db import session_scope
from services.errors import NotAuthenticated
from services.models import AuditEntry
from services.permissions import Actor
from services.secrets import get_secret_store
from services.stripe_gateway import STRIPE_KEY_SECRET
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD, member_actor

ORIGIN = {"origin": "http://localhost:3000"}


@pytest.fixture
def client(instance) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(build_api(), base_url="http://localhost:3000", follow_redirects=False)


def test_signup_sets_an_httponly_session_cookie_and_opens_the_wizard(client: TestClient) -> None:
    response = client.post(
        "/api/auth/signup",
        headers=ORIGIN,
        data={
            "org_name": "Acme",
            "plan": "starter",
            "name": "Ada Owner",
            "email": OWNER_EMAIL,
            "password": OWNER_PASSWORD,
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/onboarding"
    cookies = {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
    access, refresh = cookies[identity.ACCESS_COOKIE], cookies[identity.REFRESH_COOKIE]
    assert "HttpOnly" in access and "SameSite=lax" in access and "Path=/;" in access and "Max-Age=3600" in access
    assert "HttpOnly" in refresh and "SameSite=strict" in refresh and "Path=/api/auth" in refresh
    token = access.split(";")[0].split("=", 1)[1]
    assert identity.verify_access(token).role == "owner"


def test_signup_errors_come_back_signed_with_the_fields_kept(client: TestClient) -> None:
    response = client.post(
        "/api/auth/signup",
        headers=ORIGIN,
        data={"org_name": "Acme", "plan": "pro", "name": "Ada Owner", "email": OWNER_EMAIL, "password": "short"},
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/signup?flash=")
    token = response.headers["location"].split("flash=", 1)[1]
    data = flash.unpack(token)
    assert "at least 10" in data["message"] and data["email"] == OWNER_EMAIL
    assert "password" not in data and "short" not in str(data)
    assert flash.unpack(token[:-3] + "AAA") == {}  # a doctored message is not shown


@pytest.mark.parametrize(
    "headers", [{}, {"origin": "https://evil.example"}, {"origin": "null"}, {"referer": "https://evil.example/page"}]
)
@pytest.mark.parametrize(
    "path",
    [
        "/api/auth/signup",
        "/api/auth/login",
        "/api/auth/logout",
        "/api/onboarding/stripe-key",
        "/api/onboarding/demo-key",
    ],
)
def test_cross_site_form_posts_are_refused(client: TestClient, path: str, headers: dict[str, str]) -> None:
    response = client.post(
        path,
        headers=headers,
        data={
            "org_name": "Evil",
            "plan": "pro",
            "email": "e@evil.example",
            "password": "evil-password-123",
            "key": "rk_test_x",
        },
    )
    assert response.status_code == 403
    from services.organization import get_organization

    assert get_organization() is None  # nothing was created


def test_a_cross_site_demo_key_post_with_the_owners_cookie_is_refused(
    client: TestClient, owner: Actor, stripe_peer, sync_starts: list[bool]
) -> None:  # type: ignore[no-untyped-def]
    _sign_in(client, owner)
    response = client.post("/api/onboarding/demo-key", headers={"origin": "https://evil.example"})
    assert response.status_code == 403 and "location" not in response.headers
    assert get_secret_store().get(STRIPE_KEY_SECRET) is None and stripe_keys.connection() is None
    assert _audit("stripe.connect") == [] and sync_starts == []


def test_login_sets_cookie_and_follows_only_local_next_paths(client: TestClient, owner) -> None:  # type: ignore[no-untyped-def]
    ok = client.post(
        "/api/auth/login", headers=ORIGIN, data={"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "next": "/customers"}
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/customers"
    assert "HttpOnly" in ok.headers["set-cookie"]
    for evil in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        r = client.post(
            "/api/auth/login", headers=ORIGIN, data={"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "next": evil}
        )
        assert r.headers["location"] == "/"
    bad = client.post("/api/auth/login", headers=ORIGIN, data={"email": OWNER_EMAIL, "password": "wrong-password"})
    assert bad.headers["location"].startswith("/login?flash=") and "set-cookie" not in bad.headers


def test_logout_revokes_the_session(client: TestClient, owner) -> None:  # type: ignore[no-untyped-def]
    tokens = identity.login(OWNER_EMAIL, OWNER_PASSWORD)
    client.cookies.set(identity.ACCESS_COOKIE, tokens.access)
    response = client.post("/api/auth/logout", headers=ORIGIN)
    assert response.status_code == 303 and 'billy_access=""' in response.headers["set-cookie"]
    with pytest.raises(NotAuthenticated):
        identity.verify_access(tokens.access)
    with pytest.raises(NotAuthenticated):
        identity.refresh(tokens.refresh)  # the whole family ended, not just the access token


def test_stripe_key_route_requires_a_signed_in_owner(client: TestClient, owner) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/onboarding/stripe-key", headers=ORIGIN, data={"key": "rk_test_abcdefghijklmnop"})
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_health_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").text == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "secret_store": "ok"}


def test_a_failed_login_keeps_where_the_member_was_going(client: TestClient, owner) -> None:  # type: ignore[no-untyped-def]
    bad = client.post(
        "/api/auth/login",
        headers=ORIGIN,
        data={"email": OWNER_EMAIL, "password": "wrong-password", "next": "/customers"},
    )
    assert bad.status_code == 303 and "next=%2Fcustomers" in bad.headers["location"]


def test_readiness_includes_stripe_once_connected(
    client: TestClient, owner, stripe_peer, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    monkeypatch.setattr(health, "stripe_check", health.StripeCheck(clock=lambda: now[0]))
    key = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, key)
    assert client.get("/readyz").json()["checks"]["stripe"] == "ok"
    httpx.delete(f"{stripe_peer.url}/_config/restricted_keys/{key}")  # the key is revoked in Stripe
    assert client.get("/readyz").status_code == 200  # the answer is kept for 30 s ...
    now[0] += health.STRIPE_CHECK_SECONDS
    ready = client.get("/readyz")  # ... then Stripe is asked again: it answers, and refuses the key
    assert ready.status_code == 200 and ready.json()["checks"]["stripe"] == health.KEY_REJECTED
    # The instance stays in service, so the Owner can reach Settings → Stripe connection to rotate it.
    stripe_peer_down = "http://127.0.0.1:9"  # Stripe itself unreachable: that is not ready
    monkeypatch.setenv("BILLY_STRIPE_API_BASE", stripe_peer_down)
    get_settings.cache_clear()
    now[0] += health.STRIPE_CHECK_SECONDS
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json()["checks"]["stripe"].startswith("failed")


def _cookies(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}


def test_refresh_route_rotates_cookies_and_refuses_replays(client: TestClient, owner) -> None:  # type: ignore[no-untyped-def]
    tokens = identity.login(OWNER_EMAIL, OWNER_PASSWORD)
    client.cookies.set(identity.REFRESH_COOKIE, tokens.refresh)
    fresh = client.post("/api/auth/refresh", headers=ORIGIN)
    assert fresh.status_code == 200 and fresh.json()["ok"] is True
    assert tokens.refresh not in fresh.text and "access" not in fresh.json()  # tokens only ever in cookies
    new_access = _cookies(fresh)[identity.ACCESS_COOKIE].split(";")[0].split("=", 1)[1]
    assert identity.verify_access(new_access).email == OWNER_EMAIL
    client.cookies.clear()
    client.cookies.set(identity.REFRESH_COOKIE, tokens.refresh)  # the spent one, replayed
    replay = client.post("/api/auth/refresh", headers=ORIGIN)
    assert replay.status_code == 401
    with pytest.raises(NotAuthenticated):
        identity.verify_access(new_access)  # the family is gone


def test_invite_link_opens_via_an_httponly_cookie_and_accepts(client: TestClient, owner, smtp_catcher) -> None:  # type: ignore[no-untyped-def]
    from services import team

    team.invite_members(owner, [("clerk@example.com", "billing_clerk")])
    link = smtp_catcher.links(to="clerk@example.com")[0]
    path = link.split("://", 1)[1].split("/", 1)[1]
    opened = client.get("/" + path)
    assert opened.status_code == 303 and opened.headers["location"] == "/invite"
    cookie = _cookies(opened)["billy_invite_link"]
    assert "HttpOnly" in cookie
    accepted = client.post(
        "/api/invites/accept", headers=ORIGIN, data={"name": "Casey", "password": "violet-harbour-lantern-42"}
    )
    assert accepted.status_code == 303 and accepted.headers["location"] == "/dashboard"
    access = _cookies(accepted)[identity.ACCESS_COOKIE].split(";")[0].split("=", 1)[1]
    assert identity.verify_access(access).role == "billing_clerk"
    again = client.get("/" + path)  # the used link now explains itself
    assert again.status_code == 303 and again.headers["location"].startswith("/invite?flash=")
    assert "already been used" in flash.unpack(again.headers["location"].split("flash=", 1)[1])["message"]


def test_tampered_and_unknown_links_get_a_clear_page(client: TestClient, owner) -> None:  # type: ignore[no-untyped-def]
    tampered = client.get("/api/links/invite?token=abc.def")
    assert tampered.headers["location"].startswith("/invite?flash=")
    assert "Ask your Owner" in flash.unpack(tampered.headers["location"].split("flash=", 1)[1])["message"]
    assert client.get("/api/links/nonsense?token=x").status_code == 404


def test_forgot_password_answers_the_same_whether_or_not_the_account_exists(
    client: TestClient,
    owner,
    smtp_catcher,  # type: ignore[no-untyped-def]
) -> None:
    known = client.post("/api/auth/forgot", headers=ORIGIN, data={"email": OWNER_EMAIL})
    unknown = client.post("/api/auth/forgot", headers=ORIGIN, data={"email": "nobody@example.com"})
    message = lambda r: flash.unpack(r.headers["location"].split("flash=", 1)[1])["message"]  # noqa: E731
    assert message(known) == message(unknown)
    assert [m.to for m in smtp_catcher.messages()] == [OWNER_EMAIL]


# --- sandbox mode: "Use the sandbox's demo key" ------------------------------------------------


@pytest.fixture
def sync_starts(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records each start of the first sync (without running it: these tests look at the route)."""
    started: list[bool] = []
    monkeypatch.setattr(sync.background_sync, "start", lambda *a, **k: started.append(True) or True)
    return started


def _sign_in(client: TestClient, actor: Actor) -> None:
    assert actor.user_id is not None
    client.cookies.set(identity.ACCESS_COOKIE, identity.start_session(actor.user_id, "127.0.0.1", "pytest").access)


def _flash(response: Any) -> dict[str, Any]:
    assert response.status_code == 303 and response.headers["location"].startswith("/onboarding?flash=")
    return flash.unpack(response.headers["location"].split("flash=", 1)[1])


def _audit(action: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()  # type: ignore[arg-type]
        return [(r.outcome, r.actor_email, dict(r.details or {})) for r in rows]


def test_the_demo_key_route_connects_the_sandbox_key_for_the_owner(
    client: TestClient, owner: Actor, stripe_peer, sync_starts: list[bool]
) -> None:  # type: ignore[no-untyped-def]
    _sign_in(client, owner)
    response = client.post("/api/onboarding/demo-key", headers=ORIGIN)
    data = _flash(response)
    assert data["code"] == "connected" and stripe_peer.demo_key[-4:] in data["message"]
    assert stripe_peer.demo_key not in response.headers["location"] + response.text + str(data)
    assert get_secret_store().get(STRIPE_KEY_SECRET) == stripe_peer.demo_key
    connected = stripe_keys.connection()
    assert connected is not None and all(connected.permissions.values())
    assert sync_starts == [True]  # the first sync starts, as after a pasted key
    hint = stripe_peer.demo_key[-4:]
    assert _audit("stripe.connect") == [
        ("ok", OWNER_EMAIL, {"source": "sandbox_demo_key", "mode": "test", "key_hint": hint})
    ]

    # Once a key is connected the offer is over: a second post changes nothing.
    again = client.post("/api/onboarding/demo-key", headers=ORIGIN)
    assert _flash(again)["code"] == "already_connected" and sync_starts == [True]
    assert _audit("stripe.connect")[-1][0] == "failed"


def test_the_demo_key_does_not_replace_a_connected_key(
    client: TestClient, owner: Actor, stripe_peer, sync_starts: list[bool]
) -> None:  # type: ignore[no-untyped-def]
    own_key = stripe_peer.restricted_key(profile="billy")
    stripe_keys.connect_stripe_key(owner, own_key)
    _sign_in(client, owner)
    assert _flash(client.post("/api/onboarding/demo-key", headers=ORIGIN))["code"] == "already_connected"
    assert get_secret_store().get(STRIPE_KEY_SECRET) == own_key and sync_starts == []


@pytest.mark.parametrize(("role", "label"), [("read_only", "Read Only"), ("billing_clerk", "Billing Clerk")])
def test_the_demo_key_route_refuses_other_roles_and_audits_it(
    client: TestClient, owner: Actor, stripe_peer, sync_starts: list[bool], role: str, label: str
) -> None:  # type: ignore[no-untyped-def]
    member = member_actor(role, f"{role}@example.com")
    _sign_in(client, member)
    data = _flash(client.post("/api/onboarding/demo-key", headers=ORIGIN))
    assert data["code"] == "permission_denied" and f"({label})" in data["message"]
    assert _audit("stripe.connect") == [("denied", member.email, {"source": "sandbox_demo_key"})]
    assert get_secret_store().get(STRIPE_KEY_SECRET) is None and stripe_keys.connection() is None
    assert sync_starts == []


def test_the_demo_key_route_refuses_outside_sandbox_mode(
    client: TestClient, owner: Actor, stripe_peer, sync_starts: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BILLY_SANDBOX", "false")  # a real deployment (the demo key setting left behind)
    get_settings.cache_clear()
    _sign_in(client, owner)
    data = _flash(client.post("/api/onboarding/demo-key", headers=ORIGIN))
    assert data["code"] == "demo_unavailable"
    assert get_secret_store().get(STRIPE_KEY_SECRET) is None and stripe_keys.connection() is None
    assert [row[0] for row in _audit("stripe.connect")] == ["failed"] and sync_starts == []
