"""The control plane's way into a new instance: `billy provision-org`, `set-plan` and `handover`, and
the Owner's 60-second, single-use hand-over sign-in at `/api/auth/handover` (issue 18).

The commands are run as the control plane runs them (argv, the password on stdin, one JSON line
back), in-process for speed and once as a real process; each on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from itsdangerous import URLSafeSerializer
from sqlmodel import select
from starlette.testclient import TestClient

from billy_app.api import flash
from billy_app.api.routes import build_api
from services import clock, handover, identity, magic_links, team
from services.cli import main
from services.config import PROJECT_ROOT
from services.db import get_engine, session_scope
from services.errors import PlanLimitReached
from services.magic_links import LinkInvalid, Purpose
from services.models import AuditEntry, Member, Organization, StripeConnection
from services.permissions import OWNER, Actor, authorize
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD, Instance, member_actor

# What the control plane's signup form collected (a password strong enough for the policy).
SEED_PASSWORD = "quartz-lantern-harbour-1917"
TRIAL_END = datetime(2031, 3, 14, 12, 0, tzinfo=UTC)
SEED_ARGS = [
    "provision-org",
    "--org-name",
    "Globex Ltd",
    "--plan",
    "pro",
    "--owner-email",
    "Hank@Globex.example",
    "--owner-name",
    "Hank Scorpio",
    "--trial-ends-at",
    "2031-03-14T12:00:00Z",
]
HOST = "http://globex.localhost:8080"  # an organisation's own address behind the local proxy


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str = "") -> Any:
    """`billy <argv>` with `stdin`, as the provisioner runs it: (exit code, stdout lines, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def _seed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    code, lines, err = _run(monkeypatch, capsys, SEED_ARGS, SEED_PASSWORD + "\n")
    assert code == 0, err
    assert len(lines) == 1, lines  # one JSON line and nothing else: the control plane parses stdout
    return dict(json.loads(lines[0]))


def _audit(action: str) -> list[tuple[str, str, int | None, str]]:
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()  # type: ignore[arg-type]
        return [(r.outcome, r.source, r.actor_id, r.error or "") for r in rows]


def _members() -> list[tuple[str, str, str]]:
    with session_scope() as s:
        return sorted((m.email, m.name, m.role) for m in s.exec(select(Member)))


# --- the hand-over token ----------------------------------------------------------------------


def test_a_handover_signs_the_owner_in_once(any_store_owner: Actor) -> None:
    link = handover.issue_handover()
    assert timedelta(seconds=59) < link.expires_at - clock.now() <= timedelta(seconds=60)
    tokens = handover.redeem_handover(link.token, "203.0.113.9", "Firefox")
    signed_in = identity.verify_access(tokens.access)
    assert (signed_in.user_id, signed_in.role) == (any_store_owner.user_id, OWNER)
    assert identity.refresh(tokens.refresh).access  # a full sign-in, refresh token included

    with pytest.raises(LinkInvalid, match="already been used") as refused:
        handover.redeem_handover(link.token, "198.51.100.4", "curl")
    assert "password" in refused.value.message  # tells the Owner what to do instead
    ok, denied = _audit(handover.ACTION)
    assert ok == ("ok", "dashboard", any_store_owner.user_id, "")
    assert denied[:3] == ("denied", "dashboard", any_store_owner.user_id) and "already been used" in denied[3]
    assert _audit("auth.handover_issued") == [("ok", "system", None, "")]


def test_a_handover_lives_sixty_seconds(owner: Actor) -> None:
    # Started in the past: the access tokens issued on the way must not look issued in the future.
    with clock.freeze(clock.now() - timedelta(minutes=5)):
        link = handover.issue_handover()
        clock.advance(timedelta(seconds=59))
        assert identity.verify_access(handover.redeem_handover(link.token).access).user_id == owner.user_id

        late = handover.issue_handover()
        clock.advance(timedelta(seconds=60))
        with pytest.raises(LinkInvalid, match="expired"):
            handover.redeem_handover(late.token)


def test_only_the_newest_handover_works(owner: Actor) -> None:
    first, second = handover.issue_handover(), handover.issue_handover()
    with pytest.raises(LinkInvalid, match="replaced by a newer one"):
        handover.redeem_handover(first.token)
    assert identity.verify_access(handover.redeem_handover(second.token).access).role == OWNER


def _reset_link_for_owner() -> str:
    with session_scope() as s:
        signed, _ = magic_links.create(s, Purpose.RESET, OWNER_EMAIL)
    return signed


def _cut(token: str) -> str:
    return token[:-4]


def _other_byte(token: str) -> str:
    return token[:10] + ("A" if token[10] != "A" else "B") + token[11:]


def _another_instances(token: str) -> str:
    """The same token as another organisation's instance would sign it (its own key)."""
    payload = URLSafeSerializer("x", salt="billy:magic:handover").loads_unsafe(token)[1]
    assert isinstance(payload, dict) and payload["e"] == OWNER_EMAIL  # the genuine content, re-signed
    return URLSafeSerializer("another-instance-key-" + "k" * 40, salt="billy:magic:handover").dumps(payload)


@pytest.mark.parametrize(
    "forge",
    [
        _cut,
        _other_byte,
        lambda token: "",
        lambda token: "garbage",
        lambda token: _reset_link_for_owner(),
        _another_instances,
    ],
    ids=["cut short", "one character changed", "empty", "garbage", "a password reset link", "another instance's"],
)
def test_a_tampered_handover_signs_nobody_in(owner: Actor, forge: Any) -> None:
    link = handover.issue_handover()
    with pytest.raises(LinkInvalid, match="not valid"):
        handover.redeem_handover(forge(link.token))
    assert _audit(handover.ACTION) == []  # forged tokens name nobody: not the Owner's row
    assert identity.verify_access(handover.redeem_handover(link.token).access).role == OWNER  # still unspent


def test_a_handover_dies_when_ownership_moves(owner: Actor) -> None:
    manager = member_actor("billing_manager", "manager@example.com")
    link = handover.issue_handover()
    team.transfer_ownership(owner, manager.user_id or 0, OWNER_PASSWORD)
    with pytest.raises(LinkInvalid, match="Owner, who has changed"):
        handover.redeem_handover(link.token)
    assert _audit(handover.ACTION)[0][:3] == ("denied", "dashboard", owner.user_id)


# --- the route the control plane sends the browser to ------------------------------------------


@pytest.fixture
def browser(instance: Instance) -> TestClient:
    return TestClient(build_api(), base_url=HOST, follow_redirects=False)


def _set_cookie_headers(response: Any) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def test_the_route_signs_in_with_host_only_cookies_and_opens_onboarding(browser: TestClient, owner: Actor) -> None:
    response = browser.get("/api/auth/handover", params={"token": handover.issue_handover().token})
    assert response.status_code == 303 and response.headers["location"] == "/onboarding"
    assert response.headers["referrer-policy"] == "no-referrer" and response.headers["cache-control"] == "no-store"
    cookies = _set_cookie_headers(response)
    assert set(cookies) == {identity.ACCESS_COOKIE, identity.REFRESH_COOKIE}
    for header in cookies.values():
        # Host-only: a cookie with Domain=localhost (or the base domain) would reach every organisation.
        assert "domain" not in header.lower() and "HttpOnly" in header, header
    access = cookies[identity.ACCESS_COOKIE].split(";")[0].split("=", 1)[1]
    assert identity.verify_access(access).user_id == owner.user_id
    # The same cookie opens the pages behind sign-in (the app's own check of the access cookie).
    assert browser.cookies.get(identity.ACCESS_COOKIE) == access


def test_a_second_visit_is_sent_to_sign_in_with_the_reason(browser: TestClient, owner: Actor) -> None:
    url = "/api/auth/handover?" + urlencode({"token": handover.issue_handover().token})
    assert browser.get(url).status_code == 303
    browser.cookies.clear()  # someone else, with the address from the first browser's history
    again = browser.get(url)
    assert again.status_code == 303 and again.headers["location"].startswith("/login?flash=")
    assert not again.headers.get_list("set-cookie")
    assert again.headers["cache-control"] == "no-store"
    message = flash.unpack(again.headers["location"].split("flash=", 1)[1])["message"]
    assert "already been used" in message and "password" in message


def test_an_owner_past_onboarding_lands_on_the_dashboard(browser: TestClient, owner: Actor) -> None:
    with session_scope() as s:
        s.add(StripeConnection(mode="test", secret_name="", key_hint="", onboarding_done=True))
    response = browser.get("/api/auth/handover", params={"token": handover.issue_handover().token})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"


def test_a_handover_token_cannot_be_parked_as_an_emailed_link(browser: TestClient, owner: Actor) -> None:
    """`/api/links/<purpose>` keeps invite and reset links in a cookie for their form; a hand-over
    has no form and must not outlive its one GET in a cookie."""
    link = handover.issue_handover()
    response = browser.get("/api/links/handover", params={"token": link.token})
    assert response.status_code == 404 and not response.headers.get_list("set-cookie")
    assert identity.verify_access(handover.redeem_handover(link.token).access).role == OWNER  # not spent


# --- the commands the control plane runs ---------------------------------------------------------


def test_provision_org_creates_the_organisation_once_and_hands_over(
    any_store: Instance, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _seed(monkeypatch, capsys)
    assert set(first) == {"handover_token", "expires_at"}
    assert timedelta(seconds=55) < datetime.fromisoformat(first["expires_at"]) - clock.now() <= timedelta(seconds=60)
    with session_scope() as s:
        org = s.get(Organization, 1)
        assert org is not None
        assert (org.name, org.plan, org.trial_ends_at, org.plan_chosen_at) == ("Globex Ltd", "pro", TRIAL_END, None)
    assert _members() == [("hank@globex.example", "Hank Scorpio", OWNER)]
    assert [row[:2] for row in _audit("organization.signup")] == [("ok", "system")]

    # The control plane retries (it crashed before reading the line): nothing doubles, a new token.
    second = _seed(monkeypatch, capsys)
    assert second["handover_token"] != first["handover_token"]
    assert _members() == [("hank@globex.example", "Hank Scorpio", OWNER)]
    assert len(_audit("organization.signup")) == 1
    with pytest.raises(LinkInvalid):
        handover.redeem_handover(first["handover_token"])
    signed_in = identity.verify_access(handover.redeem_handover(second["handover_token"]).access)
    assert (signed_in.email, signed_in.role) == ("hank@globex.example", OWNER)
    identity.login("hank@globex.example", SEED_PASSWORD)  # the password from stdin is the Owner's


@pytest.mark.parametrize(
    ("argv", "stdin", "says"),
    [
        (SEED_ARGS, "password123\n", "password"),
        (SEED_ARGS, "\n", "standard input"),
        ([a if a != "pro" else "gold" for a in SEED_ARGS], SEED_PASSWORD + "\n", "plan"),
        ([a if a != "Hank@Globex.example" else "not-an-address" for a in SEED_ARGS], SEED_PASSWORD + "\n", "email"),
        ([*SEED_ARGS[:-1], "2031-03-14T12:00:00"], SEED_PASSWORD + "\n", "time zone"),
        ([*SEED_ARGS, "--password", SEED_PASSWORD], "", "standard input"),
    ],
    ids=["weak password", "no password", "unknown plan", "bad email", "time without zone", "password in argv"],
)
def test_provision_org_refuses_bad_input_with_exit_2(
    instance: Instance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    says: str,
) -> None:
    try:
        code, lines, err = _run(monkeypatch, capsys, argv, stdin)
    except SystemExit as exit_:  # argparse's own refusals
        code, (out, err) = exit_.code, capsys.readouterr()
        lines = out.splitlines()
    assert code == 2 and lines == [] and says in err.lower(), err
    assert SEED_PASSWORD not in err
    assert _members() == []


def test_provision_org_will_not_take_over_another_owners_instance(
    owner: Actor, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _members()
    code, lines, err = _run(monkeypatch, capsys, SEED_ARGS, SEED_PASSWORD + "\n")
    assert code == 2 and lines == [] and "another Owner" in err
    assert _members() == before
    with session_scope() as s:
        org = s.get(Organization, 1)
        assert org is not None and (org.name, org.plan) == ("Acme Ltd", "pro")
    with pytest.raises(identity.InvalidCredentials):
        identity.login("hank@globex.example", SEED_PASSWORD)


def test_handover_command_gives_a_fresh_token_for_the_owner(
    any_store: Instance, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = _run(monkeypatch, capsys, ["handover"])
    assert code == 2 and lines == [] and "provision-org" in err  # no Owner yet
    seeded = _seed(monkeypatch, capsys)
    code, lines, _ = _run(monkeypatch, capsys, ["handover"])
    fresh = json.loads(lines[0])
    assert code == 0 and len(lines) == 1 and set(fresh) == {"handover_token", "expires_at"}
    assert fresh["handover_token"] != seeded["handover_token"]
    assert identity.verify_access(handover.redeem_handover(fresh["handover_token"]).access).role == OWNER


def test_set_plan_applies_the_trial_and_plan_at_once(
    any_store_owner: Actor, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    access = identity.start_session(any_store_owner.user_id or 0).access
    authorize(identity.verify_access(access), "team.invite")  # during the trial: the Owner may invite

    ended = (clock.now() - timedelta(days=1)).isoformat()
    code, lines, _ = _run(monkeypatch, capsys, ["set-plan", "--plan", "starter", "--trial-ends-at", ended, "--trial"])
    assert code == 0 and json.loads(lines[0]) == {"plan": "starter", "trial_ends_at": ended, "plan_chosen": False}
    with pytest.raises(PlanLimitReached, match="trial ended"):  # read-only from the next request on
        authorize(identity.verify_access(access), "team.invite")

    code, lines, _ = _run(monkeypatch, capsys, ["set-plan", "--plan", "business", "--plan-chosen"])
    assert code == 0 and json.loads(lines[0]) == {"plan": "business", "trial_ends_at": ended, "plan_chosen": True}
    actor = identity.verify_access(access)
    authorize(actor, "team.invite")
    assert actor.plan == "business"
    assert [(row[0], row[1]) for row in _audit("billy.set_plan")] == [("ok", "system"), ("ok", "system")]


def test_set_plan_refuses_a_plan_the_team_does_not_fit(
    owner: Actor, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):  # four members: Starter holds three
        member_actor("viewer", f"viewer{n}@example.com")
    code, lines, err = _run(monkeypatch, capsys, ["set-plan", "--plan", "starter"])
    assert code == 2 and lines == [] and "Starter allows 3 members" in err
    code, lines, err = _run(monkeypatch, capsys, ["set-plan", "--plan", "gold"])
    assert code == 2 and "'gold' is not one of Billy's plans" in err
    with session_scope() as s:
        org = s.get(Organization, 1)
        assert org is not None and org.plan == "pro"


# --- the password on its way in ------------------------------------------------------------------


def _everything_stored() -> str:
    """Every value of every table, as text (what a copy of the database would show)."""
    engine = get_engine()
    with engine.connect() as conn:
        tables = sa.inspect(engine).get_table_names()
        return "\n".join(str(conn.execute(sa.text(f'SELECT * FROM "{t}"')).all()) for t in tables)  # noqa: S608


def test_the_control_plane_runs_provision_org_and_the_password_stays_on_stdin(
    any_store: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a real process (the provisioner's way): the password travels only on stdin; it is not in
    argv, the output, the log (at DEBUG) or anywhere in the store, and it signs the Owner in."""
    monkeypatch.setenv("BILLY_LOG_LEVEL", "DEBUG")
    argv = [sys.executable, "-m", "services.cli", *SEED_ARGS]
    assert SEED_PASSWORD not in " ".join(argv)
    done = subprocess.run(
        argv, input=SEED_PASSWORD + "\n", capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and set(json.loads(lines[0])) == {"handover_token", "expires_at"}
    assert SEED_PASSWORD not in done.stdout + done.stderr
    stored = _everything_stored()
    assert "hank@globex.example" in stored and SEED_PASSWORD not in stored
    if any_store.kind == "sqlite":
        files = sorted(any_store.data_dir.rglob("*"))
        assert not [f for f in files if f.is_file() and SEED_PASSWORD.encode() in f.read_bytes()]
    identity.login("hank@globex.example", SEED_PASSWORD)
    signed_in = identity.verify_access(handover.redeem_handover(json.loads(lines[0])["handover_token"]).access)
    assert signed_in.role == OWNER
