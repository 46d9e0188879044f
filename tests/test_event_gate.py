"""The event gate, through Reflex's real event pipeline: a tab's state belongs to the session
that filled it, and every handler's arguments are checked against its declared signature.

Issue 10, F1: a closed tab's token replayed with no cookie (or another member's cookie) used to
receive the previous session's whole state on `hydrate`. F5: wrong argument types crashed
handlers with a traceback, and Reflex's generic setters were refused without an audit row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
from sqlmodel import select

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.event_gate import MAX_TEXT, billy_state_classes, contract_for
from billy_app.state.audit_viewer import AuditViewerState
from billy_app.state.dashboard import DashboardState
from billy_app.state.session import SessionState
from billy_app.state.team import TeamState
from services import identity, team
from services.db import session_scope
from services.models import AuditEntry, StripeConnection
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD, member_actor
from tests.reflex_events import Pipeline, Tab, event_pipeline, signed_in_cookie

VIEWER_EMAIL = "viewer@example.com"
SECRET_MEMBER = "secret-colleague@example.com"  # only the Owner's team page shows this address


@pytest.fixture
def pipeline(owner) -> Iterator[Pipeline]:  # type: ignore[no-untyped-def]
    member_actor("billing_clerk", SECRET_MEMBER)
    member_actor("read_only", VIEWER_EMAIL)
    with event_pipeline() as running:
        yield running


def _owner_tab_with_private_data(pipeline: Pipeline) -> Tab:
    """The Owner opens Settings → Team and the audit log: member list and audit rows in state."""
    tab = pipeline.signed_in_tab(OWNER_EMAIL, OWNER_PASSWORD, "/settings/team")
    assert SECRET_MEMBER in tab.send(TeamState, "load").text
    tab.path = "/settings/audit"
    tab.send(AuditViewerState, "load")
    assert SECRET_MEMBER in tab.hydrate().text  # the Owner's own tab may show it again
    return tab


def test_a_closed_tabs_token_replayed_without_a_cookie_gets_only_public_state(pipeline: Pipeline) -> None:
    tab = _owner_tab_with_private_data(pipeline)
    replay = pipeline.tab(cookie="", path="/login", token=tab.token)  # the token from a proxy log
    sent = replay.hydrate()
    assert sent.deltas, "hydrate answers with the state"
    assert SECRET_MEMBER not in sent.text and OWNER_EMAIL not in sent.text
    # And the tab's state itself is empty now: the Owner's next hydrate must load afresh.
    again = pipeline.tab(cookie="", path="/login", token=tab.token).hydrate()
    assert SECRET_MEMBER not in again.text


def test_another_member_signing_in_in_the_same_tab_never_receives_the_owners_data(pipeline: Pipeline) -> None:
    tab = _owner_tab_with_private_data(pipeline)
    viewer_cookie = signed_in_cookie(VIEWER_EMAIL, "another-long-password")
    same_tab = pipeline.tab(viewer_cookie, path="/dashboard", token=tab.token)
    sent = same_tab.hydrate()
    assert SECRET_MEMBER not in sent.text and "team.view" not in sent.text
    # Any event at all, not only hydrate, empties the Owner's vars first (and sends the emptied values).
    tab_b = _owner_tab_with_private_data(pipeline)
    other = pipeline.tab(viewer_cookie, path="/settings/team", token=tab_b.token).send(
        TeamState, "set_row_email", {"index": 0, "email": "x@example.com"}
    )
    assert SECRET_MEMBER not in other.text


def test_a_signed_out_session_replaying_its_old_cookie_gets_nothing(pipeline: Pipeline) -> None:
    tokens = identity.login(OWNER_EMAIL, OWNER_PASSWORD, "127.0.0.1", "pytest-tab")
    cookie = f"{identity.ACCESS_COOKIE}={tokens.access}"
    tab = pipeline.tab(cookie, path="/settings/team")
    assert SECRET_MEMBER in tab.send(TeamState, "load").text
    identity.logout(tokens.access, tokens.refresh)  # the sign-in is revoked; the JWT itself is still unexpired
    assert SECRET_MEMBER not in pipeline.tab(cookie, path="/settings/team", token=tab.token).hydrate().text


def test_a_session_ended_between_two_quick_events_is_not_taken_for_alive(pipeline: Pipeline) -> None:
    """A handler reuses the caller its event's gate verified (the store's word once per event); the
    next event, however soon, is checked afresh."""
    tokens = identity.login(OWNER_EMAIL, OWNER_PASSWORD, "127.0.0.1", "pytest-tab")
    tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path="/settings/team")
    assert SECRET_MEMBER in tab.send(TeamState, "load").text
    identity.logout(tokens.access, tokens.refresh)
    again = tab.send(TeamState, "load")  # well within a second of the first
    assert SECRET_MEMBER not in again.text and OWNER_EMAIL not in again.text


def test_an_event_asks_the_store_for_its_caller_once(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard's load calls several services; the caller is checked against the store once
    for the event, not once per call (fifty busy tabs queued on those reads: bench/load)."""
    checks: list[str] = []
    verify = identity.verify_access
    monkeypatch.setattr(identity, "verify_access", lambda *a, **k: checks.append("check") or verify(*a, **k))
    with session_scope() as s:  # past the wizard, so the dashboard loads its report
        s.add(StripeConnection(mode="test", secret_name="", key_hint="", onboarding_done=True))
    tab = pipeline.owner_tab("/dashboard")
    tab.send(SessionState, "require_member")
    checks.clear()
    sent = tab.send(DashboardState, "load")
    # Two events: the load, and the live watch it starts; one check each.
    assert sent.last(DashboardState, "updated_at") and checks == ["check", "check"]


def test_a_role_change_empties_the_tab(pipeline: Pipeline) -> None:
    manager = member_actor("billing_manager", "manager@example.com")
    cookie = signed_in_cookie("manager@example.com", "another-long-password")
    tab = pipeline.tab(cookie, path="/dashboard")
    assert "manager@example.com" in tab.send(SessionState, "require_member").text
    owner = identity.verify_access(signed_in_cookie(OWNER_EMAIL, OWNER_PASSWORD).split("=", 1)[1])
    team.change_role(owner, manager.user_id, "read_only")
    # The old cookie's token version no longer matches: the tab is treated as signed out.
    sent = tab.hydrate()
    assert "manager@example.com" not in sent.text


# --- F5: arguments as declared ----------------------------------------------------------------------

WRONG_VALUES: list[Any] = [
    None,
    7,
    2.5,
    True,
    [],
    ["a", ["b"]],
    {},
    {"q": ["not", "text"]},
    {"deep": [[[[["x"]]]]]},
    "x" * (MAX_TEXT + 1),
    "\ud800",  # a lone surrogate
    "1" * 400,
]


def _valid_value(adapter: pydantic.TypeAdapter[Any]) -> Any:
    offered = adapter.json_schema().get("enum", [])  # an enum-typed argument's values
    for candidate in (*offered, "a", 0, False, {}, {"q": "a"}, [], None):
        try:
            adapter.validate_python(candidate)
        except pydantic.ValidationError:
            continue
        return candidate
    raise AssertionError("no valid value for a handler argument")


def _handlers() -> list[tuple[type, str]]:
    found = []
    for cls in billy_state_classes():
        for name, handler in cls.event_handlers.items():
            if name == "setvar" or handler.fn.__qualname__.split(".")[0] in {"BaseState", "State"}:
                continue  # Reflex's own (setvar is tested on its own)
            found.append((cls, name))
    return sorted(found, key=lambda f: (f[0].get_full_name(), f[1]))


HANDLERS = _handlers()


def test_every_handler_declares_its_arguments() -> None:
    assert len(HANDLERS) > 80
    for cls, name in HANDLERS:
        handler = cls.event_handlers[name]
        contract = contract_for(handler)
        hints = handler.fn.__annotations__
        for param in contract.adapters:
            assert param in hints, f"{cls.__name__}.{name}({param}) has no type"


def _wrong_payloads(cls: type, name: str) -> list[Any]:
    """Every malformed argument set worth sending to `cls.name`: not an object, an unexpected
    argument, a required one missing, and each argument given each wrong value it refuses."""
    contract = contract_for(cls.event_handlers[name])
    valid = {param: _valid_value(adapter) for param, adapter in contract.adapters.items()}
    attempts: list[Any] = [[1, 2], "not an object", {**valid, "unexpected": 1}]
    if contract.required:
        attempts.append({k: v for k, v in valid.items() if k not in contract.required})
    for param, adapter in contract.adapters.items():
        for wrong in WRONG_VALUES:
            try:
                adapter.validate_python(wrong)
                if len(json.dumps(wrong)) <= MAX_TEXT and wrong != "\ud800":
                    continue  # a right value for this argument
            except pydantic.ValidationError:
                pass
            except (TypeError, ValueError):
                pass
            attempts.append({**valid, param: wrong})
    return attempts


def test_wrong_argument_types_get_a_plain_message_and_no_traceback(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """Every handler of every state, through one signed-in tab (the gate refuses before a handler
    runs, so one tab serves them all); fails once with every handler that let a bad call through."""
    tab = pipeline.signed_in_tab(OWNER_EMAIL, OWNER_PASSWORD, "/dashboard")
    caplog.set_level(logging.WARNING)
    failures: list[str] = []
    for cls, name in HANDLERS:
        for payload in _wrong_payloads(cls, name):
            caplog.clear()
            sent = tab.send_named(f"{cls.get_full_name()}.{name}", payload)
            if not any("could not read that request" in t for t in sent.toasts()):
                failures.append(f"{cls.__name__}.{name}({payload!r:.80}): no plain refusal")
            logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info or r.exc_text]
            if logged:
                failures.append(f"{cls.__name__}.{name}({payload!r:.80}): logged {caplog.text[-300:]!r}")
    assert not failures, f"{len(failures)} bad call(s) not refused plainly:\n" + "\n".join(failures[:40])


def test_setvar_and_client_storage_writes_are_refused_and_audited(pipeline: Pipeline) -> None:
    tab = pipeline.signed_in_tab(OWNER_EMAIL, OWNER_PASSWORD, "/settings/team")
    viewer = pipeline.signed_in_tab(VIEWER_EMAIL, "another-long-password", "/settings/team")
    sent = viewer.send(TeamState, "setvar", {"var_name": "members", "value": [{"id": "1"}]})
    assert any("not available" in t for t in sent.toasts())
    internal = "reflex___state____state.reflex___state____update_vars_internal_state.update_vars_internal"
    viewer.send_named(internal, {"vars": {f"{TeamState.get_full_name()}.members": []}})
    # Reflex's own hydrate sends an empty client-storage update: that one passes.
    assert not tab.send_named(internal, {"vars": {}}).toasts()
    with session_scope() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action == "events.forbidden")).all()
    assert [(r.actor_email, r.outcome, r.details["handler"]) for r in rows] == [
        (VIEWER_EMAIL, "denied", "setvar"),
        (VIEWER_EMAIL, "denied", "update_vars_internal"),
    ]
