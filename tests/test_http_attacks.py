"""Attack tests: every HTTP route of `build_api()`, called directly as a script or an attacker would.

Each attack is refused, and refused *before anything changes*: the store (members, sessions,
refresh tokens, links, organisation, Stripe connection, Stripe events), the secret store
(Stripe key, webhook secret) and the audit log are compared before and after. Where the
service audits a refusal, the `denied` row is checked too. The table `ROUTES` classifies
every route the app serves; a route added later without a row there fails
`test_every_route_is_classified`, and once classified it joins the sweeps below.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import pytest
from sqlmodel import select
from starlette.routing import Route
from starlette.testclient import TestClient

from billy_app.api import flash
from billy_app.api.http import LINK_COOKIES
from billy_app.api.routes import build_api
from services import identity, magic_links, stripe_events, sync, team
from services.db import session_scope
from services.magic_links import Purpose
from services.models import (
    AuditEntry,
    MagicLink,
    Member,
    Organization,
    RefreshToken,
    SessionFamily,
    StripeConnection,
    StripeEvent,
    utcnow,
)
from services.permissions import ACTIONS, OWNER, ROLES, Actor, Source
from services.secrets import get_secret_store
from services.signing import instance_key
from services.stripe_gateway import STRIPE_KEY_SECRET
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD

BASE_URL = "http://localhost:3000"
ORIGIN = {"origin": BASE_URL}
MEMBER_PASSWORD = "another-long-password"
ATTACKER_PASSWORD = "copper-meadow-sparrow-917"
ATTACKER_EMAIL = "mallory@evil.example"
ATTACKER_WEBHOOK_SECRET = "whsec_" + "M" * 32  # would let its holder forge deliveries
INVITEE = "new.member@example.com"

# --- every route, and what it takes to use it ------------------------------------------------

PUBLIC = "public"  # anyone; grants nothing without a password or a valid link
SESSION = "session"  # ends the caller's own sign-in (access or refresh cookie)
REFRESH = "refresh cookie"
INVITE_LINK = "invite link cookie"
RESET_LINK = "reset link cookie"
STRIPE_SIGNATURE = "Stripe signature"  # server to server: no cookies, so no CSRF check either
# A signed-in member's single-use export ticket (a GET: it changes nothing but spending the ticket).
# Its own attacks (spent, tampered, expired, another member's, another kind's) are in test_exports.py.
DOWNLOAD_TICKET = "download ticket"
# The control plane's 60-second, single-use hand-over sign-in for the Owner (a GET: following it is
# the sign-in). Its own attacks (spent, expired, tampered, replaced, after ownership moved, another
# instance's) are in tests/test_handover.py.
HANDOVER_TOKEN = "hand-over token"
# Any signed-in member, whatever the role (approving `agent-billy login`; the service checks the rest:
# tests/test_agent_login.py).
MEMBER = "any member"
# The CLI's code exchange: no cookies (so no CSRF either), a signed one-time code and its PKCE verifier.
PKCE_CODE = "login code and PKCE verifier"
CONNECT_REQUEST = {"redirect_uri": "http://127.0.0.1:53682/callback", "state": "state-12345678"}
POST = frozenset({"POST"})
GET = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Policy:
    """`needs`: PUBLIC, SESSION, a link or refresh cookie, or the action (services.permissions.ACTIONS)
    the route's service authorizes. `form` values are filled from a context (`{stripe_key}` …), so
    the same request is an attacker's (no or wrong credentials) or a victim's (cross-site)."""

    needs: str
    call: str  # the URL an attacker calls
    form: dict[str, str]
    anonymous: tuple[int, str]  # status and Location prefix for a caller with no cookies at all
    anonymous_audit: tuple[tuple[str, str], ...] = ()  # (action, outcome) rows such a call writes
    page: str = ""  # member routes: the page a refusal is explained on
    audited_as: str = ""  # member routes: the audit action, when not the action authorized

    @property
    def audit_action(self) -> str:
        return self.audited_as or self.needs


ROUTES: dict[tuple[str, frozenset[str]], Policy] = {
    ("/api/auth/signup", POST): Policy(
        PUBLIC,
        "/api/auth/signup",
        {"org_name": "Evil Corp", "plan": "business", "email": "{new_email}", "password": "{new_password}"},
        (303, "/signup?flash="),  # one organisation per instance: it exists already
    ),
    ("/api/auth/login", POST): Policy(
        PUBLIC,
        "/api/auth/login",
        {"email": "{email}", "password": "{password}", "next": "/settings/team"},
        (303, "/login?flash="),
        (("auth.login", "denied"),),
    ),
    ("/api/auth/logout", POST): Policy(SESSION, "/api/auth/logout", {}, (303, "/login?flash=")),
    ("/api/auth/refresh", POST): Policy(REFRESH, "/api/auth/refresh", {}, (401, "")),
    ("/api/auth/forgot", POST): Policy(
        PUBLIC, "/api/auth/forgot", {"email": "{forgot_email}"}, (303, "/forgot?flash=")
    ),
    ("/api/auth/reset", POST): Policy(
        RESET_LINK,
        "/api/auth/reset",
        {"password": "{new_password}", "password_again": "{new_password}"},
        (303, "/reset?flash="),
    ),
    ("/api/auth/handover", GET): Policy(HANDOVER_TOKEN, "/api/auth/handover?token=", {}, (303, "/login?flash=")),
    ("/api/links/{purpose:str}", GET): Policy(PUBLIC, "/api/links/invite?token=", {}, (303, "/invite?flash=")),
    ("/api/invites/accept", POST): Policy(
        INVITE_LINK,
        "/api/invites/accept",
        {"name": "Mallory", "password": "{new_password}", "role": "owner", "email": "{new_email}"},
        (303, "/invite?flash="),
    ),
    ("/api/team/transfer-ownership", POST): Policy(
        "team.transfer_ownership",
        "/api/team/transfer-ownership",
        {"member_id": "{target_id}", "password": "{password}"},
        (303, "/login?next=%2Fsettings%2Fteam"),
        page="/settings/team",
    ),
    ("/api/onboarding/stripe-key", POST): Policy(
        "stripe.connect",
        "/api/onboarding/stripe-key",
        {"key": "{stripe_key}"},
        (303, "/login?next=%2Fonboarding"),
        page="/onboarding",
    ),
    # Sandbox mode's "use the demo key": no key in the form, the server picks it.
    ("/api/onboarding/demo-key", POST): Policy(
        "stripe.connect",
        "/api/onboarding/demo-key",
        {},
        (303, "/login?next=%2Fonboarding"),
        page="/onboarding",
    ),
    ("/api/settings/webhook-secret", POST): Policy(
        "stripe.connect",
        "/api/settings/webhook-secret",
        {"secret": "{webhook_secret}"},
        (303, "/login?next=%2Fsettings%2Fsync"),
        page="/settings/sync",
        audited_as="stripe.webhook_secret",
    ),
    # Settings → Stripe connection: rotates the connected key, or connects one when none is (as in
    # these attacks: a refused rotation is tests/test_stripe_connection.py's).
    ("/api/settings/stripe-key", POST): Policy(
        "stripe.connect",
        "/api/settings/stripe-key",
        {"key": "{stripe_key}"},
        (303, "/login?next=%2Fsettings%2Fstripe"),
        page="/settings/stripe",
    ),
    # Forged deliveries are attacked in tests/test_webhooks.py; here: no signature, no entry.
    ("/api/stripe/webhook", POST): Policy(STRIPE_SIGNATURE, "/api/stripe/webhook", {}, (400, "")),
    ("/api/exports/{kind:str}.csv", GET): Policy(
        DOWNLOAD_TICKET, "/api/exports/charges.csv?ticket=forged", {}, (401, "")
    ),
    ("/api/agent/connect", POST): Policy(
        MEMBER,
        "/api/agent/connect",
        {**CONNECT_REQUEST, "decision": "approve"},
        # Back to the same approval after signing in (the fields it was given, not the decision).
        (303, "/login?" + urlencode({"next": "/connect-agent?" + urlencode(CONNECT_REQUEST)})),
    ),
    ("/api/agent/token", POST): Policy(PKCE_CODE, "/api/agent/token", {"code": "forged"}, (400, "")),
    ("/healthz", GET): Policy(PUBLIC, "/healthz", {}, (200, "")),
    ("/readyz", GET): Policy(PUBLIC, "/readyz", {}, (200, "")),
}

# Cookie-authenticated form posts, which a page on another site could make a browser send.
POST_ROUTES = [
    p for (_, methods), p in ROUTES.items() if methods == POST and p.needs not in (STRIPE_SIGNATURE, PKCE_CODE)
]
ACTION_ROUTES = [p for p in ROUTES.values() if p.needs in ACTIONS]
# Every built-in role whose permissions lack what a member route needs: derived from the role data.
ROLE_ATTACKS = [
    (policy.call, role)
    for policy in ACTION_ROUTES
    for role, spec in ROLES.items()
    if ACTIONS[policy.needs] not in spec.permissions
]
CROSS_SITE_HEADERS: list[dict[str, str]] = [
    {},  # neither Origin nor Referer
    {"origin": "https://evil.example"},
    {"origin": "null"},  # sandboxed iframe, data: URL
    {"referer": "https://evil.example/page"},
    {"origin": "http://localhost:3000.evil.example"},  # look-alike host
    {"referer": "http://localhost:3000@evil.example/x"},  # user-info trick
    {"origin": "https://localhost:3000"},  # another scheme is another origin
    {"origin": "http://localhost:3001"},  # another port too
    {"origin": "https://evil.example", "referer": f"{BASE_URL}/settings/team"},  # Origin wins
]


def _policy(call: str) -> Policy:
    return next(p for p in ROUTES.values() if p.call == call)


def test_every_route_is_classified() -> None:
    routes = build_api().routes
    served = {(r.path, frozenset(r.methods or ())) for r in routes if isinstance(r, Route)}
    # One mount besides: the REST API, attacked in tests/test_rest_api.py and tests/test_rest_schemathesis.py.
    assert [getattr(r, "path", "") for r in routes if not isinstance(r, Route)] == ["/api/v1"]
    assert served == set(ROUTES), "classify the new route in ROUTES (and give it an attack below)"
    for policy in ROUTES.values():
        assert policy.needs in {
            PUBLIC,
            SESSION,
            REFRESH,
            INVITE_LINK,
            RESET_LINK,
            STRIPE_SIGNATURE,
            DOWNLOAD_TICKET,
            HANDOVER_TOKEN,
            MEMBER,
            PKCE_CODE,
        } | set(ACTIONS)
        assert (policy.needs in ACTIONS) == bool(policy.page)
    # Today every member route is Owner-only, so every other built-in role gets attacked.
    assert sorted({role for _, role in ROLE_ATTACKS}) == sorted(r for r in ROLES if r != OWNER)


# --- people, state and helpers ----------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    actor: Actor
    tokens: identity.IssuedTokens
    password: str

    @property
    def id(self) -> int:
        assert self.actor.user_id is not None
        return self.actor.user_id


def _sign_in(actor: Actor, password: str) -> Person:
    return Person(actor, identity.start_session(actor.user_id, "10.0.0.7", "pytest"), password)  # type: ignore[arg-type]


@functools.cache
def _member_hash() -> str:
    return identity.hash_password(MEMBER_PASSWORD)  # argon2 is slow on purpose: hash it once


def _member(role: str, email: str) -> Actor:
    """Like `tests.conftest.member_actor`, with one shared password hash."""
    with session_scope() as s:
        member = Member(email=email, password_hash=_member_hash(), role=role)
        s.add(member)
        s.flush()
        return Actor(member.id, email, role, Source.DASHBOARD, "127.0.0.1", "pytest")


def _crew(owner: Actor) -> dict[str, Person]:
    """The Owner and one member of every other built-in role, each signed in."""
    people = {OWNER: _sign_in(owner, OWNER_PASSWORD)}
    for role in ROLES:
        if role != OWNER:
            people[role] = _sign_in(_member(role, f"{role.replace('_', '.')}@example.com"), MEMBER_PASSWORD)
    return people


@pytest.fixture
def client() -> TestClient:
    """No fixture dependency: the test's own instance (`owner` or `any_store_owner`) is the one used."""
    return TestClient(build_api(), base_url=BASE_URL, follow_redirects=False)


@pytest.fixture
def crew(any_store_owner: Actor) -> dict[str, Person]:
    return _crew(any_store_owner)


@pytest.fixture
def sqlite_crew(owner: Actor) -> dict[str, Person]:
    return _crew(owner)


def _fill(form: dict[str, str], ctx: dict[str, str]) -> dict[str, str]:
    return {k: v.format_map(ctx) for k, v in form.items()}


def _attacker_ctx(crew: dict[str, Person], stripe_key: str) -> dict[str, str]:
    """What someone without credentials fills in: a guessed password, themself as the new Owner."""
    return {
        "email": OWNER_EMAIL,
        "password": "guessed-password-123",
        "target_id": str(crew["billing_clerk"].id),
        "new_email": ATTACKER_EMAIL,
        "new_password": ATTACKER_PASSWORD,
        "stripe_key": stripe_key,
        "forgot_email": ATTACKER_EMAIL,
        "webhook_secret": ATTACKER_WEBHOOK_SECRET,
    }


def _victim_ctx(crew: dict[str, Person], stripe_key: str) -> dict[str, str]:
    """The worst case for a cross-site post: every field is what the victim would send."""
    return {**_attacker_ctx(crew, stripe_key), "password": OWNER_PASSWORD, "forgot_email": OWNER_EMAIL}


def _snapshot() -> dict[str, Any]:
    """Everything an attack could change (last-seen times aside, which reading a session bumps)."""
    with session_scope() as s:
        org = s.get(Organization, 1)
        return {
            "members": sorted(
                (m.id, m.email, m.name, m.role, m.active, m.token_version, m.password_hash)
                for m in s.exec(select(Member))
            ),
            "families": sorted(
                (f.id, f.member_id, str(f.expires_at), str(f.revoked_at), f.revoked_reason)
                for f in s.exec(select(SessionFamily))
            ),
            "refresh_tokens": sorted(
                (r.id, r.family_id, r.token_hash, str(r.used_at)) for r in s.exec(select(RefreshToken))
            ),
            "links": sorted(
                (x.id, x.purpose, x.email, x.role, str(x.used_at), str(x.revoked_at)) for x in s.exec(select(MagicLink))
            ),
            "organization": org and (org.name, org.plan, str(org.plan_chosen_at), str(org.trial_ends_at)),
            "stripe": [(c.mode, c.key_hint, c.secret_name, c.connected_by) for c in s.exec(select(StripeConnection))],
            "stripe_key": get_secret_store().get(STRIPE_KEY_SECRET),
            "webhook_secret": get_secret_store().get(stripe_events.WEBHOOK_SECRET),
            "stripe_events": sorted(e.id for e in s.exec(select(StripeEvent))),
            "audit": [
                (a.id, a.action, a.outcome, a.actor_id, a.actor_role)
                for a in s.exec(select(AuditEntry).order_by(AuditEntry.id))  # type: ignore[arg-type]
            ],
        }


def _assert_unchanged(before: dict[str, Any], audited: list[tuple[Any, ...]] | None = None) -> None:
    """Nothing changed but the audit rows listed: (action, outcome) or (action, outcome, actor id, role)."""
    after = _snapshot()
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}
    assert after["audit"][: len(before["audit"])] == before["audit"]
    new_rows = after["audit"][len(before["audit"]) :]
    expected = audited or []
    assert [row[1 : 1 + len(want)] for row, want in zip(new_rows, expected, strict=False)] == expected
    assert len(new_rows) == len(expected), new_rows


def _set_cookies(client: TestClient, **cookies: str) -> None:
    client.cookies.clear()
    for name, value in cookies.items():
        client.cookies.set(name, value)


def _cookie_values(response: Any) -> dict[str, str]:
    values = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        values[name] = rest.split(";", 1)[0].strip('"')
    return values


def _granted(response: Any) -> dict[str, str]:
    """Session cookies the response hands out (deleting one is not handing it out)."""
    return {
        name: value
        for name, value in _cookie_values(response).items()
        if name in (identity.ACCESS_COOKIE, identity.REFRESH_COOKIE) and value
    }


def _flash(response: Any) -> dict[str, Any]:
    return flash.unpack(response.headers["location"].split("flash=", 1)[1])


def _call(client: TestClient, policy: Policy, form: dict[str, str], headers: dict[str, str]) -> Any:
    if "POST" in _methods(policy):
        return client.post(policy.call, headers=headers, data=form)
    return client.get(policy.call, headers=headers)


def _methods(policy: Policy) -> frozenset[str]:
    return next(methods for (_, methods), p in ROUTES.items() if p is policy)


def _token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _instance_signed(claims: dict[str, Any], algorithm: str = "HS256") -> str:
    return jwt.encode(claims, instance_key(identity.JWT_KEY_SECRET), algorithm=algorithm)


def _refused_to_sign_in(response: Any, policy: Policy) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == policy.anonymous[1], response.headers["location"]
    assert not _granted(response)


def _denied_on_page(response: Any, policy: Policy, role_label: str) -> None:
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"{policy.page}?flash=")
    message = _flash(response)["message"]
    assert f"({role_label})" in message or "password" in message, message
    assert not _granted(response)


@pytest.fixture
def quiet_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key that does get stored starts a background sync; the tests here don't need it."""
    monkeypatch.setattr(sync.background_sync, "start", lambda *a, **k: False)


# --- no cookies at all ------------------------------------------------------------------------


@pytest.mark.parametrize("call", [p.call for p in ROUTES.values()])
def test_without_credentials_nothing_is_granted_or_changed(
    client: TestClient, sqlite_crew: dict[str, Person], stripe_peer, call: str
) -> None:  # type: ignore[no-untyped-def]
    policy = _policy(call)
    form = _fill(policy.form, _attacker_ctx(sqlite_crew, stripe_peer.restricted_key(profile="billy")))
    # Webhooks are set up, so an unsigned delivery is refused for its missing signature.
    get_secret_store().set(stripe_events.WEBHOOK_SECRET, "whsec_" + "s" * 32)
    before = _snapshot()
    _set_cookies(client)
    response = _call(client, policy, form, ORIGIN)
    status, location = policy.anonymous
    assert response.status_code == status, response.text
    assert response.headers.get("location", "").startswith(location)
    if location.startswith("/login?next="):
        assert response.headers["location"] == location  # off to sign-in; the service never ran
    assert not _granted(response)
    assert ATTACKER_PASSWORD not in response.text and "rk_test_" not in response.text
    _assert_unchanged(before, list(policy.anonymous_audit))


def test_wrong_methods_are_not_served(client: TestClient, sqlite_crew: dict[str, Person]) -> None:
    """A GET (an <img> or a link, which a Lax cookie accompanies) never reaches a form route."""
    owner = sqlite_crew[OWNER]
    _set_cookies(client, **{identity.ACCESS_COOKIE: owner.tokens.access, identity.REFRESH_COOKIE: owner.tokens.refresh})
    before = _snapshot()
    for (_, methods), policy in ROUTES.items():
        for method in ({"GET", "HEAD", "PUT", "DELETE", "PATCH", "POST"} - methods) - {"OPTIONS"}:
            response = client.request(method, policy.call, headers=ORIGIN, params=policy.form)
            assert response.status_code == 405, (method, policy.call)
    _assert_unchanged(before)


# --- another role's valid credentials ---------------------------------------------------------


@pytest.mark.parametrize(("call", "role"), ROLE_ATTACKS)
def test_other_roles_are_refused_and_audited_as_denied(
    client: TestClient, crew: dict[str, Person], stripe_peer, call: str, role: str
) -> None:  # type: ignore[no-untyped-def]
    """A signed-in member of a role without the permission, sending the request the Owner would
    (a working Stripe key; "make me Owner" with their own password): refused by the service."""
    policy = _policy(call)
    attacker = crew[role]
    ctx = {
        **_attacker_ctx(crew, stripe_peer.restricted_key(profile="billy")),
        "target_id": str(attacker.id),
        "password": attacker.password,
    }
    before = _snapshot()
    _set_cookies(client, **{identity.ACCESS_COOKIE: attacker.tokens.access})
    response = client.post(policy.call, headers=ORIGIN, data=_fill(policy.form, ctx))
    _denied_on_page(response, policy, ROLES[role].label)
    _assert_unchanged(before, [(policy.audit_action, "denied", attacker.id, role)])
    assert get_secret_store().get(STRIPE_KEY_SECRET) is None


@pytest.mark.parametrize("call", [p.call for p in ACTION_ROUTES])
def test_a_validly_signed_role_claim_is_not_what_authorizes(
    client: TestClient, crew: dict[str, Person], stripe_peer, call: str
) -> None:  # type: ignore[no-untyped-def]
    """Even with the instance key, writing `role: owner` into a Clerk's token changes nothing:
    the stored role decides (and the refusal is audited under it)."""
    policy = _policy(call)
    clerk = crew["billing_clerk"]
    forged = _instance_signed({**_claims(clerk.tokens.access), "role": OWNER})
    ctx = {**_attacker_ctx(crew, stripe_peer.restricted_key(profile="billy")), "target_id": str(clerk.id)}
    ctx["password"] = clerk.password
    before = _snapshot()
    _set_cookies(client, **{identity.ACCESS_COOKIE: forged})
    response = client.post(policy.call, headers=ORIGIN, data=_fill(policy.form, ctx))
    _denied_on_page(response, policy, ROLES["billing_clerk"].label)
    _assert_unchanged(before, [(policy.audit_action, "denied", clerk.id, "billing_clerk")])


def test_the_owner_gets_through_with_the_same_requests(
    client: TestClient, crew: dict[str, Person], stripe_peer, quiet_sync: None
) -> None:  # type: ignore[no-untyped-def]
    """The control for the refusals above: the Owner's cookie and the same forms succeed,
    but only with the Owner's own password; afterwards the old Owner's session is over."""
    owner, manager = crew[OWNER], crew["billing_manager"]
    key = stripe_peer.restricted_key(profile="billy")
    _set_cookies(client, **{identity.ACCESS_COOKIE: owner.tokens.access})
    stored = client.post("/api/onboarding/stripe-key", headers=ORIGIN, data={"key": key})
    assert stored.status_code == 303 and _flash(stored)["code"] == "connected"
    assert get_secret_store().get(STRIPE_KEY_SECRET) == key
    secret = "whsec_" + "o" * 32
    saved = client.post("/api/settings/webhook-secret", headers=ORIGIN, data={"secret": secret})
    assert saved.status_code == 303 and _flash(saved)["code"] == "saved"
    assert get_secret_store().get(stripe_events.WEBHOOK_SECRET) == secret

    transfer = _policy("/api/team/transfer-ownership")
    before = _snapshot()
    wrong = client.post(transfer.call, headers=ORIGIN, data={"member_id": str(manager.id), "password": MEMBER_PASSWORD})
    _denied_on_page(wrong, transfer, ROLES[OWNER].label)
    _assert_unchanged(before, [("team.transfer_ownership", "denied", owner.id, OWNER)])

    moved = client.post(transfer.call, headers=ORIGIN, data={"member_id": str(manager.id), "password": OWNER_PASSWORD})
    assert moved.status_code == 303 and moved.headers["location"].startswith("/login?flash=")
    assert _cookie_values(moved)[identity.ACCESS_COOKIE] == ""  # signed out here too
    with session_scope() as s:
        assert {m.id: m.role for m in s.exec(select(Member)) if m.role == OWNER} == {manager.id: OWNER}
    # The former Owner's (and the new Owner's) earlier cookies no longer open anything.
    for person in (owner, manager):
        before = _snapshot()
        _set_cookies(client, **{identity.ACCESS_COOKIE: person.tokens.access})
        again = client.post("/api/onboarding/stripe-key", headers=ORIGIN, data={"key": key})
        _refused_to_sign_in(again, _policy("/api/onboarding/stripe-key"))
        _assert_unchanged(before)


@pytest.mark.parametrize("call", ["/api/onboarding/stripe-key", "/api/onboarding/demo-key"])
def test_an_owner_whose_trial_ended_cannot_connect_stripe(
    client: TestClient, sqlite_crew: dict[str, Person], stripe_peer, call: str
) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        org = s.get(Organization, 1)
        assert org is not None
        org.trial_ends_at = utcnow() - timedelta(days=1)
    owner = sqlite_crew[OWNER]
    before = _snapshot()
    _set_cookies(client, **{identity.ACCESS_COOKIE: owner.tokens.access})
    response = client.post(call, headers=ORIGIN, data={"key": stripe_peer.restricted_key(profile="billy")})
    assert response.status_code == 303 and _flash(response)["code"] == "plan_limit_reached"
    _assert_unchanged(before, [("stripe.connect", "denied", owner.id, OWNER)])


# --- doctored, stale and revoked access tokens ------------------------------------------------


def _edited_payload(crew: dict[str, Person], client: TestClient) -> str:
    header, _, signature = crew["billing_clerk"].tokens.access.split(".")
    claims = {**_claims(crew["billing_clerk"].tokens.access), "role": OWNER, "sub": str(crew[OWNER].id)}
    return f"{header}.{_b64(claims)}.{signature}"


def _other_key(crew: dict[str, Person], client: TestClient) -> str:
    return jwt.encode(_claims(crew[OWNER].tokens.access), "not-the-instance-key-" + "x" * 43, algorithm="HS256")


def _alg_none(crew: dict[str, Person], client: TestClient) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(crew[OWNER].tokens.access))}."


def _alg_hs512(crew: dict[str, Person], client: TestClient) -> str:
    return _instance_signed(_claims(crew[OWNER].tokens.access), "HS512")


def _expired(crew: dict[str, Person], client: TestClient) -> str:
    now = int(time.time())
    return _instance_signed({**_claims(crew[OWNER].tokens.access), "iat": now - 7200, "exp": now - 1})


def _without_family(crew: dict[str, Person], client: TestClient) -> str:
    claims = _claims(crew[OWNER].tokens.access)
    del claims["fam"]
    return _instance_signed(claims)


def _other_issuer(crew: dict[str, Person], client: TestClient) -> str:
    return _instance_signed({**_claims(crew[OWNER].tokens.access), "iss": "someone-else"})


def _someone_elses_family(crew: dict[str, Person], client: TestClient) -> str:
    """The Owner's id on the Clerk's (live) sign-in."""
    fam = _claims(crew["billing_clerk"].tokens.access)["fam"]
    return _instance_signed({**_claims(crew[OWNER].tokens.access), "fam": fam})


def _token_version_bumped(crew: dict[str, Person], client: TestClient) -> str:
    with session_scope() as s:
        member = s.get(Member, crew[OWNER].id)
        assert member is not None
        member.token_version += 1
    return crew[OWNER].tokens.access


def _member_removed(crew: dict[str, Person], client: TestClient) -> str:
    """A removed Clerk is sent to sign in, not told their role is short: the token is dead."""
    team.remove_member(crew[OWNER].actor, crew["billing_clerk"].id)
    return crew["billing_clerk"].tokens.access


def _signed_out(crew: dict[str, Person], client: TestClient) -> str:
    owner = crew[OWNER]
    _set_cookies(client, **{identity.ACCESS_COOKIE: owner.tokens.access, identity.REFRESH_COOKIE: owner.tokens.refresh})
    assert client.post("/api/auth/logout", headers=ORIGIN).status_code == 303
    return owner.tokens.access  # a copy kept from before signing out


def _family_revoked_by_refresh_reuse(crew: dict[str, Person], client: TestClient) -> str:
    owner = crew[OWNER]
    identity.refresh(owner.tokens.refresh)
    with pytest.raises(identity.NotAuthenticated):
        identity.refresh(owner.tokens.refresh)
    return owner.tokens.access


def _family_expired(crew: dict[str, Person], client: TestClient) -> str:
    with session_scope() as s:
        family = s.get(SessionFamily, _claims(crew[OWNER].tokens.access)["fam"])
        assert family is not None
        family.expires_at = utcnow() - timedelta(seconds=1)
    return crew[OWNER].tokens.access


def _password_reset(crew: dict[str, Person], client: TestClient) -> str:
    """Someone reset the Owner's password (e.g. the Owner, having lost a laptop)."""
    with session_scope() as s:
        signed, _ = magic_links.create(s, Purpose.RESET, OWNER_EMAIL)
    team.reset_password(signed, ATTACKER_PASSWORD)
    return crew[OWNER].tokens.access


Tamper = Callable[[dict[str, Person], TestClient], str]
# Doctored tokens: refused by the signature and claim checks alone (SQLite is enough).
FORGED: dict[str, Tamper] = {
    "payload edited (role and sub)": _edited_payload,
    "signed with another key": _other_key,
    "alg none": _alg_none,
    "alg HS512 with the instance key": _alg_hs512,
    "expired": _expired,
    "no family claim": _without_family,
    "another issuer": _other_issuer,
    "garbage": lambda crew, client: "not.a.jwt",
    "empty": lambda crew, client: "",
}
# Genuine tokens the store has since disowned: on both databases.
DEAD: dict[str, Tamper] = {
    "someone else's session family": _someone_elses_family,
    "token version bumped": _token_version_bumped,
    "member removed": _member_removed,
    "signed out": _signed_out,
    "family revoked by refresh reuse": _family_revoked_by_refresh_reuse,
    "session expired": _family_expired,
    "password reset since": _password_reset,
}


def _sent_to_sign_in(client: TestClient, crew: dict[str, Person], stripe_key: str, tamper: Tamper) -> None:
    """Refused at the edge: a redirect to sign-in, no service call (so no audit row), no change."""
    token = tamper(crew, client)
    ctx = {**_victim_ctx(crew, stripe_key), "password": OWNER_PASSWORD}
    with pytest.raises(identity.NotAuthenticated):
        identity.verify_access(token)
    for policy in ACTION_ROUTES:
        before = _snapshot()
        _set_cookies(client, **{identity.ACCESS_COOKIE: token})
        response = client.post(policy.call, headers=ORIGIN, data=_fill(policy.form, ctx))
        _refused_to_sign_in(response, policy)
        _assert_unchanged(before)


@pytest.mark.parametrize("tamper", list(FORGED))
def test_doctored_access_tokens_are_sent_to_sign_in(
    client: TestClient, sqlite_crew: dict[str, Person], stripe_peer, tamper: str
) -> None:  # type: ignore[no-untyped-def]
    _sent_to_sign_in(client, sqlite_crew, stripe_peer.restricted_key(profile="billy"), FORGED[tamper])


@pytest.mark.parametrize("tamper", list(DEAD))
def test_disowned_access_tokens_are_sent_to_sign_in(
    client: TestClient, crew: dict[str, Person], stripe_peer, tamper: str
) -> None:  # type: ignore[no-untyped-def]
    _sent_to_sign_in(client, crew, stripe_peer.restricted_key(profile="billy"), DEAD[tamper])


def test_a_forged_token_cannot_sign_someone_else_out(client: TestClient, sqlite_crew: dict[str, Person]) -> None:
    """Sign-out revokes the family a cookie names, so the cookie must be genuine: forged ones
    naming the Owner's sign-in (and made-up refresh tokens) leave it alive."""
    owner = sqlite_crew[OWNER]
    forged = [
        FORGED[name](sqlite_crew, client)
        for name in ("signed with another key", "alg none", "payload edited (role and sub)")
    ]
    before = _snapshot()
    for access in forged:
        _set_cookies(client, **{identity.ACCESS_COOKIE: access, identity.REFRESH_COOKIE: "made-up-refresh-token"})
        response = client.post("/api/auth/logout", headers=ORIGIN)
        assert response.status_code == 303 and not _granted(response)
    _assert_unchanged(before)
    identity.verify_access(owner.tokens.access)
    assert identity.refresh(owner.tokens.refresh).access


# --- refresh cookies --------------------------------------------------------------------------


def test_a_refresh_replayed_after_rotation_ends_that_whole_sign_in(client: TestClient, crew: dict[str, Person]) -> None:
    owner = crew[OWNER]
    other_sign_in = _sign_in(owner.actor, OWNER_PASSWORD)  # another device: a family of its own
    _set_cookies(client, **{identity.REFRESH_COOKIE: owner.tokens.refresh})
    rotated = client.post("/api/auth/refresh", headers=ORIGIN)
    assert rotated.status_code == 200
    fresh = _granted(rotated)
    assert set(fresh) == {identity.ACCESS_COOKIE, identity.REFRESH_COOKIE}

    _set_cookies(client, **{identity.REFRESH_COOKIE: owner.tokens.refresh})  # the stolen, spent copy
    replay = client.post("/api/auth/refresh", headers=ORIGIN)
    assert replay.status_code == 401 and replay.json()["ok"] is False and not _granted(replay)
    assert _cookie_values(replay)[identity.ACCESS_COOKIE] == ""
    with session_scope() as s:
        row = s.exec(select(AuditEntry).where(AuditEntry.action == "auth.refresh_reuse")).one()
        family = s.get(SessionFamily, _claims(owner.tokens.access)["fam"])
    assert (row.outcome, row.actor_id) == ("denied", owner.id)
    assert family is not None and family.revoked_reason == "refresh_reuse"

    # The rightful holder's newest pair is dead too ...
    before = _snapshot()
    _set_cookies(client, **{identity.REFRESH_COOKIE: fresh[identity.REFRESH_COOKIE]})
    assert client.post("/api/auth/refresh", headers=ORIGIN).status_code == 401
    stripe_route = _policy("/api/onboarding/stripe-key")
    _set_cookies(client, **{identity.ACCESS_COOKIE: fresh[identity.ACCESS_COOKIE]})
    _refused_to_sign_in(client.post(stripe_route.call, headers=ORIGIN, data={"key": "rk_test_x"}), stripe_route)
    _assert_unchanged(before)  # ... and a second replay does not audit again
    # ... while the sign-in on the other device goes on.
    _set_cookies(client, **{identity.REFRESH_COOKIE: other_sign_in.tokens.refresh})
    assert client.post("/api/auth/refresh", headers=ORIGIN).status_code == 200


def _refresh_signed_out(crew: dict[str, Person], client: TestClient) -> str:
    _signed_out(crew, client)
    return crew[OWNER].tokens.refresh


def _refresh_of_removed(crew: dict[str, Person], client: TestClient) -> str:
    team.remove_member(crew[OWNER].actor, crew["billing_clerk"].id)
    return crew["billing_clerk"].tokens.refresh


def _refresh_family_expired(crew: dict[str, Person], client: TestClient) -> str:
    _family_expired(crew, client)
    return crew[OWNER].tokens.refresh


def _refresh_after_password_reset(crew: dict[str, Person], client: TestClient) -> str:
    _password_reset(crew, client)
    return crew[OWNER].tokens.refresh


REFRESH_ATTACKS: dict[str, Callable[[dict[str, Person], TestClient], str]] = {
    "made up": lambda crew, client: "made-up-refresh-token-" + "x" * 20,
    "an access token instead": lambda crew, client: crew[OWNER].tokens.access,
    "signed out": _refresh_signed_out,
    "member removed": _refresh_of_removed,
    "sign-in expired": _refresh_family_expired,
    "password reset since": _refresh_after_password_reset,
}


@pytest.mark.parametrize("attack", list(REFRESH_ATTACKS))
def test_dead_or_forged_refresh_cookies_get_nothing(client: TestClient, crew: dict[str, Person], attack: str) -> None:
    token = REFRESH_ATTACKS[attack](crew, client)
    before = _snapshot()
    _set_cookies(client, **{identity.REFRESH_COOKIE: token})
    response = client.post("/api/auth/refresh", headers=ORIGIN)
    assert response.status_code == 401 and response.json()["ok"] is False
    assert not _granted(response) and _cookie_values(response)[identity.REFRESH_COOKIE] == ""
    _assert_unchanged(before)  # not rotated, not revived


# --- cross-site posts -------------------------------------------------------------------------


@pytest.mark.parametrize("call", [p.call for p in POST_ROUTES])
def test_cross_site_posts_with_the_victims_cookies_are_refused(
    client: TestClient, sqlite_crew: dict[str, Person], stripe_peer, smtp_catcher, quiet_sync: None, call: str
) -> None:  # type: ignore[no-untyped-def]
    """The victim is signed in and holds an invite and a reset link: everything a forged post
    could ride on. Every Origin/Referer that is not ours is refused with 403, nothing changes
    and no mail goes out; the same post from our own origin then does go through."""
    policy = _policy(call)
    owner = sqlite_crew[OWNER]
    team.invite_members(owner.actor, [(INVITEE, "billing_clerk")])
    team.request_password_reset(OWNER_EMAIL)
    mails = len(smtp_catcher.messages())
    cookies = {
        identity.ACCESS_COOKIE: owner.tokens.access,
        identity.REFRESH_COOKIE: owner.tokens.refresh,
        LINK_COOKIES["invite"]: _token(smtp_catcher.links(to=INVITEE)[0]),
        LINK_COOKIES["reset"]: _token(smtp_catcher.links(to=OWNER_EMAIL)[0]),
    }
    form = _fill(policy.form, _victim_ctx(sqlite_crew, stripe_peer.restricted_key(profile="billy")))
    before = _snapshot()
    for headers in CROSS_SITE_HEADERS:
        _set_cookies(client, **cookies)
        response = client.post(policy.call, headers=headers, data=form)
        assert response.status_code == 403, (headers, response.status_code)
        assert "set-cookie" not in response.headers and "location" not in response.headers
    _assert_unchanged(before)
    assert len(smtp_catcher.messages()) == mails
    # The control: the very same post from our own pages is served.
    _set_cookies(client, **cookies)
    assert client.post(policy.call, headers=ORIGIN, data=form).status_code in (200, 303)
    _set_cookies(client, **cookies)
    same_site_referer = {"referer": f"{BASE_URL.replace('localhost', '127.0.0.1')}/settings"}
    assert client.post(policy.call, headers=same_site_referer, data=form).status_code != 403


def test_sign_in_never_sends_the_browser_to_another_site(client: TestClient, owner: Actor) -> None:
    """`next` tricks that browsers read as another host (backslashes, tabs, schemes)."""
    tricks = [
        "/\\evil.example",
        "/\\/evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "https:evil.example",
        "///evil.example",
        " //evil.example",
        "/\r\nSet-Cookie: billy_access=evil",
    ]
    for trick in tricks:
        _set_cookies(client)
        response = client.post(
            "/api/auth/login", headers=ORIGIN, data={"email": OWNER_EMAIL, "password": OWNER_PASSWORD, "next": trick}
        )
        location = response.headers["location"]
        assert response.status_code == 303 and location.startswith("/") and not location.startswith("//"), trick
        # What a browser does with it (WHATWG: backslash is a slash, tab and newline are dropped).
        as_browser_reads = location.replace("\\", "/").replace("\t", "").replace("\r", "").replace("\n", "")
        assert urlsplit(urljoin(f"{BASE_URL}/", as_browser_reads)).netloc == "localhost:3000", (trick, location)
        assert _cookie_values(response).get(identity.ACCESS_COOKIE) != "evil"


# --- link cookies and tokens ------------------------------------------------------------------


@pytest.fixture
def links(sqlite_crew: dict[str, Person], smtp_catcher) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A pending invite (for INVITEE, as Billing Clerk) and a reset link for the Owner."""
    team.invite_members(sqlite_crew[OWNER].actor, [(INVITEE, "billing_clerk")])
    team.request_password_reset(OWNER_EMAIL)
    return {
        "invite": _token(smtp_catcher.links(to=INVITEE)[0]),
        "reset": _token(smtp_catcher.links(to=OWNER_EMAIL)[0]),
    }


def _link_unspent(purpose: Purpose, signed: str) -> None:
    with session_scope() as s:
        magic_links.peek(s, purpose, signed)  # raises if used, revoked or expired


def test_a_reset_link_is_not_an_invite(client: TestClient, links: dict[str, str]) -> None:
    before = _snapshot()
    opened = client.get("/api/links/invite", params={"token": links["reset"]})
    assert opened.headers["location"].startswith("/invite?flash=")
    assert _cookie_values(opened).get(LINK_COOKIES["invite"]) == ""  # cleared, not set
    _set_cookies(client, **{LINK_COOKIES["invite"]: links["reset"]})
    accepted = client.post(
        "/api/invites/accept", headers=ORIGIN, data={"name": "Mallory", "password": ATTACKER_PASSWORD}
    )
    assert accepted.headers["location"].startswith("/invite?flash=") and not _granted(accepted)
    assert "not valid" in _flash(accepted)["message"]
    _assert_unchanged(before)
    _link_unspent(Purpose.RESET, links["reset"])


def test_an_invite_link_is_not_a_password_reset(client: TestClient, links: dict[str, str]) -> None:
    before = _snapshot()
    opened = client.get("/api/links/reset", params={"token": links["invite"]})
    assert opened.headers["location"].startswith("/reset?flash=")
    assert _cookie_values(opened).get(LINK_COOKIES["reset"]) == ""
    _set_cookies(client, **{LINK_COOKIES["reset"]: links["invite"]})
    reset = client.post(
        "/api/auth/reset", headers=ORIGIN, data={"password": ATTACKER_PASSWORD, "password_again": ATTACKER_PASSWORD}
    )
    assert reset.headers["location"].startswith("/reset?flash=") and "not valid" in _flash(reset)["message"]
    _assert_unchanged(before)
    _link_unspent(Purpose.INVITE, links["invite"])
    identity.login(OWNER_EMAIL, OWNER_PASSWORD)  # the Owner's password is unchanged


def test_a_link_counts_only_from_its_cookie(client: TestClient, links: dict[str, str]) -> None:
    """Put in the form or the query string instead, a link token is ignored."""
    before = _snapshot()
    _set_cookies(client)
    for path, form, purpose in (
        ("/api/invites/accept", {"name": "Mallory", "password": ATTACKER_PASSWORD}, "invite"),
        ("/api/auth/reset", {"password": ATTACKER_PASSWORD, "password_again": ATTACKER_PASSWORD}, "reset"),
    ):
        token = links[purpose]
        response = client.post(path, params={"token": token}, headers=ORIGIN, data={**form, "token": token})
        assert response.headers["location"].startswith(f"/{purpose}?flash=") and not _granted(response)
    _assert_unchanged(before)


def test_an_accepted_invite_cannot_be_replayed(client: TestClient, links: dict[str, str]) -> None:
    cookie = {LINK_COOKIES["invite"]: links["invite"]}
    _set_cookies(client, **cookie)
    accepted = client.post(
        "/api/invites/accept",
        headers=ORIGIN,
        # Fields the form does not have are ignored: the link alone says who and which role.
        data={"name": "Casey", "password": "violet-harbour-lantern-42", "role": OWNER, "email": ATTACKER_EMAIL},
    )
    assert accepted.status_code == 303 and accepted.headers["location"] == "/dashboard"
    assert identity.verify_access(_granted(accepted)[identity.ACCESS_COOKIE]).role == "billing_clerk"
    with session_scope() as s:
        assert s.exec(select(Member).where(Member.email == ATTACKER_EMAIL)).first() is None

    before = _snapshot()
    _set_cookies(client, **cookie)  # someone who copied the cookie (or the mail) tries it again
    replay = client.post("/api/invites/accept", headers=ORIGIN, data={"name": "Mallory", "password": ATTACKER_PASSWORD})
    assert replay.headers["location"].startswith("/invite?flash=") and not _granted(replay)
    assert "already been used" in _flash(replay)["message"]
    _assert_unchanged(before)
    identity.login(INVITEE, "violet-harbour-lantern-42")  # still Casey's password


def test_a_used_reset_link_cannot_be_replayed(client: TestClient, links: dict[str, str]) -> None:
    cookie = {LINK_COOKIES["reset"]: links["reset"]}
    first = "violet-harbour-lantern-42"
    _set_cookies(client, **cookie)
    done = client.post("/api/auth/reset", headers=ORIGIN, data={"password": first, "password_again": first})
    assert done.headers["location"].startswith("/login?flash=")
    before = _snapshot()
    _set_cookies(client, **cookie)
    replay = client.post(
        "/api/auth/reset", headers=ORIGIN, data={"password": ATTACKER_PASSWORD, "password_again": ATTACKER_PASSWORD}
    )
    assert replay.headers["location"].startswith("/reset?flash=") and "already been used" in _flash(replay)["message"]
    _assert_unchanged(before)
    identity.login(OWNER_EMAIL, first)


def test_a_reset_link_does_not_bring_back_a_removed_member(
    client: TestClient, sqlite_crew: dict[str, Person], smtp_catcher
) -> None:  # type: ignore[no-untyped-def]
    clerk = sqlite_crew["billing_clerk"]
    team.request_password_reset(clerk.actor.email)
    signed = _token(smtp_catcher.links(to=clerk.actor.email)[0])
    team.remove_member(sqlite_crew[OWNER].actor, clerk.id)
    before = _snapshot()
    _set_cookies(client, **{LINK_COOKIES["reset"]: signed})
    response = client.post(
        "/api/auth/reset", headers=ORIGIN, data={"password": ATTACKER_PASSWORD, "password_again": ATTACKER_PASSWORD}
    )
    assert response.headers["location"].startswith("/reset?flash=") and not _granted(response)
    _assert_unchanged(before)
    with pytest.raises(identity.InvalidCredentials):
        identity.login(clerk.actor.email, ATTACKER_PASSWORD)


def test_a_withdrawn_invite_cookie_is_refused(client: TestClient, sqlite_crew: dict[str, Person], links) -> None:  # type: ignore[no-untyped-def]
    owner = sqlite_crew[OWNER].actor
    with session_scope() as s:
        invite_id = s.exec(select(MagicLink.id).where(MagicLink.email == INVITEE)).one()
    team.revoke_invite(owner, invite_id)
    before = _snapshot()
    _set_cookies(client, **{LINK_COOKIES["invite"]: links["invite"]})
    response = client.post(
        "/api/invites/accept", headers=ORIGIN, data={"name": "Mallory", "password": ATTACKER_PASSWORD}
    )
    assert response.headers["location"].startswith("/invite?flash=") and not _granted(response)
    assert "withdrawn" in _flash(response)["message"]
    _assert_unchanged(before)
