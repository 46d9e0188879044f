"""Forged Reflex events: a signed-in member talks to the app's websocket directly.

Every event handler is a public endpoint. Here a Billing Clerk and a Read Only member skip
the pages and send events of their own making to the real app over Socket.IO, with
whatever arguments they like. The services refuse, audit the refusal, and Stripe never
sees a refund the role could not make.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import socketio
import sqlalchemy as sa

from billy_app.state.refund import RefundState
from billy_app.state.team import TeamState
from tests.browser.conftest import RunningApp, app_store

pytestmark = pytest.mark.browser

OWNER = ("forge-owner@example.com", "an-owner-who-checks-logs")
CLERK = ("forge-clerk@example.com", "a-clerk-with-big-ideas-7")
VIEWER = ("forge-viewer@example.com", "a-viewer-who-wants-more-9")


def _post(client: httpx.Client, app: RunningApp, path: str, data: dict[str, str]) -> httpx.Response:
    return client.post(path, data=data, headers={"origin": app.url})


def _signed_in(app: RunningApp, email: str, password: str) -> str:
    """Sign in over HTTP, as the login form does; returns the Cookie header a browser would send."""
    client = httpx.Client(base_url=app.url, follow_redirects=False)
    response = _post(client, app, "/api/auth/login", {"email": email, "password": password})
    assert response.status_code == 303 and "billy_access" in client.cookies, response.headers.get("location")
    return f"billy_access={client.cookies['billy_access']}"


class EventClient:
    """A Socket.IO client speaking Reflex's event protocol, as the page's script would."""

    def __init__(self, app: RunningApp, cookie: str, token: str | None = None) -> None:
        self.app, self.cookie, self.token = app, cookie, token or str(uuid.uuid4())
        self.updates: list[dict[str, Any]] = []

    async def _session(self, events: tuple[tuple[str, dict[str, Any]], ...], path: str) -> None:
        """One tab: one connection and one client token, events sent one after another."""
        sio = socketio.AsyncClient()
        sio.on("event", lambda data: self.updates.append(data), namespace="/_event")
        headers = {"Origin": self.app.url} | ({"Cookie": self.cookie} if self.cookie else {})
        await sio.connect(
            f"{self.app.url}?token={self.token}",
            headers=headers,
            transports=["websocket"],
            socketio_path="/_event",
            namespaces=["/_event"],
        )
        try:
            for handler, payload in events:
                router_data = {"pathname": path, "query": {}, "asPath": path}
                await sio.emit(
                    "event", {"name": handler, "payload": payload, "router_data": router_data}, namespace="/_event"
                )
                await asyncio.sleep(1.0)
        finally:
            await sio.disconnect()

    def run(self, *events: tuple[str, dict[str, Any]], path: str = "/customers") -> None:
        # Its own thread and loop: Playwright's sync API may hold this thread's loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, self._session(events, path)).result()


def _handler(state: type, name: str) -> str:
    return f"{state.get_full_name()}.{name}"


@pytest.fixture(scope="module")
def arranged(app_server: RunningApp, sandbox) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """An Owner with Stripe connected, a Clerk and a Read Only member, and a $6,000 charge."""
    import stripe

    from services.identity import hash_password

    secret = stripe.StripeClient("sk_test_forgery", base_addresses={"api": sandbox.url})
    customer = secret.v1.customers.create(params={"email": "big@example.com", "name": "Big Spender"})
    charge = secret.v1.charges.create(
        params={
            "amount": 600_000,
            "currency": "usd",
            "customer": customer.id,
            "source": "tok_visa",
            "description": "Order #BIG",
        }
    )
    client = httpx.Client(base_url=app_server.url, follow_redirects=False)
    _post(
        client,
        app_server,
        "/api/auth/signup",
        {
            "org_name": "Forgery Tests",
            "plan": "business",
            "name": "Fiona Owner",
            "email": OWNER[0],
            "password": OWNER[1],
        },
    )
    assert "billy_access" in client.cookies
    # Connecting Stripe starts the first sync, which brings the $6,000 charge into the store.
    # (The wizard's "Use the sandbox's demo key": the server picks the key, none is posted.)
    connected = _post(client, app_server, "/api/onboarding/demo-key", {})
    assert "flash" in connected.headers["location"]
    engine = app_store(app_server)
    with engine.begin() as conn:
        for (email, password), role in ((CLERK, "billing_clerk"), (VIEWER, "read_only")):
            conn.execute(
                sa.text(
                    "INSERT INTO member (email, name, password_hash, role, active, token_version, "
                    "created_at) VALUES (:e, '', :h, :r, 1, 0, CURRENT_TIMESTAMP)"
                ),
                {"e": email, "h": hash_password(password), "r": role},
            )
    deadline = time.monotonic() + 60
    with engine.connect() as conn:
        while not conn.execute(sa.text("SELECT 1 FROM stripe_charge WHERE id = :i"), {"i": charge.id}).first():
            assert time.monotonic() < deadline, "the first sync never stored the charge"
            time.sleep(0.2)
    yield {"engine": engine, "charge": charge.id, "stripe": secret}
    engine.dispose()


def _audit(engine: sa.Engine, email: str, action: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT outcome, coalesce(error, '') FROM audit_log WHERE actor_email = :e AND action = :a ORDER BY id"
            ),
            {"e": email, "a": action},
        ).all()
    return [(r[0], r[1]) for r in rows]


def test_clerk_forging_a_5000_dollar_refund_is_refused_and_audited(app_server, arranged) -> None:  # type: ignore[no-untyped-def]
    clerk = EventClient(app_server, _signed_in(app_server, *CLERK))
    clerk.run(
        (_handler(RefundState, "start"), {"charge_id": arranged["charge"]}),
        (_handler(RefundState, "set_mode"), {"mode": "partial"}),
        (_handler(RefundState, "set_amount"), {"text": "5000.00"}),
        (_handler(RefundState, "confirm"), {}),
        # The same, claiming to be the Owner in the payload: handlers take no identity from it.
        (_handler(RefundState, "confirm"), {"user_id": 1, "role": "owner"}),
    )
    refunds = arranged["stripe"].v1.refunds.list(params={"charge": arranged["charge"]}).data
    assert refunds == []
    denied = _audit(arranged["engine"], CLERK[0], "charges.refund")
    assert denied and all(outcome == "denied" for outcome, _ in denied)
    assert "Billing Clerk limit of $100.00" in denied[0][1]


def test_read_only_member_cannot_write_through_any_event(app_server, arranged) -> None:  # type: ignore[no-untyped-def]
    viewer = EventClient(app_server, _signed_in(app_server, *VIEWER))
    viewer.run(
        (_handler(RefundState, "start"), {"charge_id": arranged["charge"]}),
        (_handler(RefundState, "set_mode"), {"mode": "full"}),
        (_handler(RefundState, "confirm"), {}),
        (_handler(TeamState, "send_invites"), {}),
        (_handler(TeamState, "remove"), {"member_id": "1"}),
        (_handler(TeamState, "change_role"), {"member_id": "1", "role": "read_only"}),
    )
    assert arranged["stripe"].v1.refunds.list(params={"charge": arranged["charge"]}).data == []
    assert [o for o, _ in _audit(arranged["engine"], VIEWER[0], "team.remove")] == ["denied"]
    assert [o for o, _ in _audit(arranged["engine"], VIEWER[0], "team.change_role")] == ["denied"]
    with arranged["engine"].connect() as conn:
        owner_role = conn.execute(sa.text("SELECT role FROM member WHERE id = 1")).scalar()
    assert owner_role == "owner"


def test_clerk_calling_the_team_pages_handler_directly_gets_nothing(app_server, arranged) -> None:  # type: ignore[no-untyped-def]
    clerk = EventClient(app_server, _signed_in(app_server, *CLERK))
    clerk.run((_handler(TeamState, "load"), {}))
    sent = str(clerk.updates)
    assert OWNER[0] not in sent and VIEWER[0] not in sent  # no member list leaked
    assert "cannot see or manage the team" in sent


def test_events_without_a_session_are_refused(app_server, arranged) -> None:  # type: ignore[no-untyped-def]
    stranger = EventClient(app_server, "billy_access=forged.token.value")
    stranger.run((_handler(TeamState, "remove"), {"member_id": "2"}), (_handler(RefundState, "confirm"), {}))
    with arranged["engine"].connect() as conn:
        active = conn.execute(sa.text("SELECT count(*) FROM member WHERE active = 1")).scalar()
    assert active == 3


HYDRATE = "reflex___state____state.hydrate"


def test_a_closed_tabs_token_replayed_without_a_cookie_gets_no_private_state(app_server, arranged) -> None:  # type: ignore[no-untyped-def]
    """Issue 10, F1: the token of a closed tab (in sessionStorage and the websocket URL, so in
    proxy logs) used to return the tab's whole state to anyone sending `hydrate`."""
    from billy_app.state.audit_viewer import AuditViewerState

    owner = EventClient(app_server, _signed_in(app_server, *OWNER))
    owner.run((_handler(TeamState, "load"), {}), path="/settings/team")
    owner.run((_handler(AuditViewerState, "load"), {}), path="/settings/audit")
    assert VIEWER[0] in str(owner.updates)  # the Owner's own tab holds the member list
    time.sleep(1.5)  # the tab is closed (its socket disconnected in run)
    replay = EventClient(app_server, cookie="", token=owner.token)
    replay.run((HYDRATE, {}), path="/login")
    sent = str(replay.updates)
    assert replay.updates, "the replayed hydrate is answered"
    assert VIEWER[0] not in sent and CLERK[0] not in sent and "team.view" not in sent
    # Another member's cookie on that token gets nothing of the Owner's either.
    clerk = EventClient(app_server, _signed_in(app_server, *CLERK), token=owner.token)
    clerk.run((HYDRATE, {}), path="/dashboard")
    assert clerk.updates and VIEWER[0] not in str(clerk.updates)


def _around_email(frame: str) -> str:
    """The part of a frame around the first member email it carries, to say which state leaked."""
    at = max(frame.find(VIEWER[0]), frame.find(CLERK[0]))
    return frame[max(0, at - 400) : at + 100]


def test_the_same_tab_after_sign_out_and_another_sign_in_carries_no_owner_data(app_server, arranged, browser) -> None:  # type: ignore[no-untyped-def]
    """Issue 10, F1 in a real tab: frames after sign-out, and in the next member's session, must
    not carry the member list or audit rows the Owner's pages loaded; the tab token changes."""
    context = browser.new_context()
    page = context.new_page()
    # Each frame with the number of the socket that carried it: the Owner's socket may still deliver
    # the Owner's own late updates while the sign-out form posts; what matters is what the sockets
    # opened after sign-out receive.
    frames: list[tuple[int, str]] = []
    opened = [0]

    def record(ws) -> None:  # type: ignore[no-untyped-def]
        number = opened[0]
        opened[0] += 1
        ws.on("framereceived", lambda payload: frames.append((number, str(payload))))

    def received(from_frame: int = 0, from_socket: int = 0) -> list[str]:
        return [payload for number, payload in frames[from_frame:] if number >= from_socket]

    page.on("websocket", record)
    token = "sessionStorage.getItem('token')"
    page.goto(app_server.url + "/login")
    page.fill("#email", OWNER[0])
    page.fill("#password", OWNER[1])
    page.click("#login-submit")
    page.wait_for_url(re.compile(r".*/(onboarding|dashboard)/?(\?.*)?$"))
    page.goto(app_server.url + "/settings/team")
    page.get_by_text(VIEWER[0]).first.wait_for()
    page.goto(app_server.url + "/settings/audit")
    page.get_by_text(OWNER[0]).first.wait_for(timeout=15_000)
    owner_token = page.evaluate(token)
    assert any(VIEWER[0] in f for f in received())
    first_signed_out_socket = opened[0]
    page.click("#sign-out")
    page.wait_for_url(re.compile(r".*/login.*"))
    page.wait_for_selector("#email")
    page.wait_for_timeout(1500)
    signed_out = received(from_socket=first_signed_out_socket)
    assert signed_out, "the sign-in page talks to the server"
    leaks = [f for f in signed_out if VIEWER[0] in f or CLERK[0] in f]
    assert not leaks, f"owner data in a signed-out tab: {_around_email(leaks[0])}"
    signed_out_token = page.evaluate(token)
    assert signed_out_token != owner_token
    first_viewer_frame = len(frames)
    page.fill("#email", VIEWER[0])
    page.fill("#password", VIEWER[1])
    page.click("#login-submit")
    page.wait_for_url(re.compile(r".*/(onboarding|dashboard).*"))
    page.wait_for_timeout(1500)
    viewer = received(from_frame=first_viewer_frame, from_socket=first_signed_out_socket)
    assert viewer
    assert not [f for f in viewer if CLERK[0] in f or "team.view" in f], "owner data in the next member's session"
    assert page.evaluate(token) not in (owner_token, signed_out_token)
    context.close()


def test_the_demo_key_reaches_no_members_frames(app_server, arranged) -> None:  # type: ignore[no-untyped-def]
    """Issue 10, F2: the wizard's demo restricted key used to sit in every loader's state."""
    import sandbox as sandbox_pkg
    from billy_app.state.onboarding import OnboardingState

    for who in (VIEWER, CLERK, OWNER):
        member = EventClient(app_server, _signed_in(app_server, *who))
        member.run((HYDRATE, {}), (_handler(OnboardingState, "load"), {}), (HYDRATE, {}), path="/onboarding")
        assert member.updates, who
        assert sandbox_pkg.DEMO_RESTRICTED_KEY not in str(member.updates), who
