"""One way for state to call services (issue 11), through Reflex's real event pipeline.

Handlers run service calls with `SessionState._call` (off the event loop, the caller verified
afresh) and are decorated with `@guarded`, which answers every failure one way: an ended session
recovers, a Billy error shows its words where the page shows problems, and anything else is
logged with its traceback under an error id while the person sees only that id.

Before, handlers caught `NotAuthenticated` themselves (31 copies), and several did it after an
`except BillyError` (of which it is a subclass): the Sync now button, the approvals list and the
refund dialog showed "Please sign in again." instead of recovering the session. A Billy error a
handler did not expect was logged as a crash, and an unexpected one left busy flags set.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from reflex.state import BaseState

from billy_app import error_handlers
from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.event_gate import billy_state_classes
from billy_app.state.approvals import ApprovalsState
from billy_app.state.audit_viewer import AuditViewerState
from billy_app.state.charges import ChargesState
from billy_app.state.customer import CustomerState
from billy_app.state.customers import CustomersState
from billy_app.state.onboarding import OnboardingState
from billy_app.state.plan import PlanState
from billy_app.state.refund import RefundState
from billy_app.state.roles import RolesState
from billy_app.state.search import SearchState
from billy_app.state.session import SessionState
from billy_app.state.stripe_connection import StripeConnectionState
from billy_app.state.sync_progress import SyncProgressState
from billy_app.state.sync_settings import SyncSettingsState
from billy_app.state.team import TeamState
from services import (
    audit_viewer,
    billing,
    identity,
    organization,
    refund_requests,
    reports,
    roles,
    stripe_events,
    stripe_keys,
    sync,
    team,
)
from services.errors import PermissionDenied, StripeUnreachable
from services.permissions import Actor
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD, member_actor
from tests.reflex_events import Pipeline, Sent, Tab, event_pipeline

VIEWER_EMAIL = "viewer@example.com"
MEMBER_PASSWORD = "another-long-password"  # `member_actor`'s
STATE_DIR = Path(__file__).resolve().parents[1] / "billy_app" / "state"


@pytest.fixture
def viewer(owner: Actor) -> Actor:
    return member_actor("read_only", VIEWER_EMAIL)


@pytest.fixture
def pipeline(viewer: Actor, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    # A budget of its own, so other tests' unexpected errors in this worker cannot use it up.
    budget = error_handlers.LogBudget("state-calls", 1000, "{count} suppressed{detail}")
    monkeypatch.setattr(error_handlers, "backend_budget", budget)
    with event_pipeline() as running:
        yield running


def _tab(pipeline: Pipeline, who: str, path: str) -> Tab:
    """A tab signed in as the Owner or the Read Only member, signed out, or with no cookie at all."""
    if who == "owner":
        return pipeline.signed_in_tab(OWNER_EMAIL, OWNER_PASSWORD, path)
    if who == "viewer":
        return pipeline.signed_in_tab(VIEWER_EMAIL, MEMBER_PASSWORD, path)
    if who == "signed out":  # the sign-in is revoked; its JWT itself has not expired
        tokens = identity.login(OWNER_EMAIL, OWNER_PASSWORD, "127.0.0.1", "pytest-tab")
        identity.logout(tokens.access, tokens.refresh)
        return pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path=path)
    assert who == "no cookie"
    return pipeline.tab("", path=path)


def _recovered(sent: Sent) -> bool:
    """`SessionState.recover` ran: the page was told to try the refresh cookie."""
    return any(e.name == "_call_script" and "/api/auth/refresh" in json.dumps(e.payload) for e in sent.events)


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- (a) an ended session recovers, whatever the handler -----------------------------------------

# (state, handler, payload, path): handlers of every shape that call a service first thing.
NEEDS_A_SESSION = [
    (SessionState, "require_member", {}, "/dashboard"),
    (TeamState, "load", {}, "/settings/team"),
    (TeamState, "remove", {"member_id": "2"}, "/settings/team"),
    (TeamState, "send_invites", {}, "/settings/team"),  # a generator
    (SyncProgressState, "sync_now", {}, "/dashboard"),  # used to show "Please sign in again."
    (ApprovalsState, "refresh", {}, "/approvals"),  # used to show "Please sign in again."
    (RefundState, "set_amount", {"text": "5.00"}, "/customers/cus_1"),  # used to show it in the dialog
    (AuditViewerState, "export", {}, "/settings/audit"),  # a generator
    (AuditViewerState, "refresh", {}, "/settings/audit"),
    (ChargesState, "apply", {"form": {}}, "/charges"),
    (CustomersState, "search", {"form": {"q": "ada"}}, "/customers"),
    (CustomerState, "load", {}, "/customers/cus_1"),
    (PlanState, "choose", {"plan": "starter"}, "/settings/plan"),
    (RolesState, "delete", {"key": "custom-1"}, "/settings/roles"),
    (SearchState, "go", {"form": {"q": "ada"}}, "/search"),
    (SyncSettingsState, "sync_now", {}, "/settings/sync"),
    (OnboardingState, "finish", {}, "/onboarding"),
    (StripeConnectionState, "load", {}, "/settings/stripe"),
    (StripeConnectionState, "recheck", {}, "/settings/stripe"),  # a generator
]


@pytest.mark.parametrize("who", ["no cookie", "signed out"])
@pytest.mark.parametrize(
    ("state", "handler", "payload", "path"),
    NEEDS_A_SESSION,
    ids=[f"{s.__name__}.{h}" for s, h, _, _ in NEEDS_A_SESSION],
)
def test_an_ended_session_recovers_on_every_kind_of_handler(
    pipeline: Pipeline,
    caplog: pytest.LogCaptureFixture,
    who: str,
    state: type[BaseState],
    handler: str,
    payload: dict[str, Any],
    path: str,
) -> None:
    tab = _tab(pipeline, who, path)
    if handler == "send_invites":
        tab.send(TeamState, "set_row_email", {"index": 0, "email": "new@example.com"})
    caplog.set_level(logging.WARNING)
    sent = tab.send(state, handler, payload)
    assert _recovered(sent), sent.text[-1500:]
    assert "Please sign in again" not in sent.text
    assert not _errors(caplog), caplog.text[-2000:]
    if handler == "send_invites":
        assert sent.last(TeamState, "sending") is False  # the button works again after recovery


def test_the_sync_watcher_a_background_task_recovers_an_ended_session_too(pipeline: Pipeline) -> None:
    sent = _tab(pipeline, "no cookie", "/dashboard").send(SyncProgressState, "watch")
    assert _recovered(sent)
    assert "Please sign in again" not in sent.text  # what it used to show


# --- (b) a Billy error shows its words where the page shows problems ------------------------------


def test_a_read_only_member_is_refused_the_team_page_in_the_services_words(pipeline: Pipeline, viewer: Actor) -> None:
    with pytest.raises(PermissionDenied) as refused:
        team.list_team(viewer)
    sent = _tab(pipeline, "viewer", "/settings/team").send(TeamState, "load")
    assert sent.last(TeamState, "refused") is True
    assert sent.last(TeamState, "error") == refused.value.message
    assert OWNER_EMAIL not in sent.text


# (state, handler, payload, the var that shows problems, the same action asked of the service)
REFUSED: list[tuple[type[BaseState], str, dict[str, Any], str, Callable[[Actor], object]]] = [
    (PlanState, "choose", {"plan": "starter"}, "message", lambda who: organization.choose_plan(who, "starter")),
    (TeamState, "remove", {"member_id": "1"}, "message", lambda who: team.remove_member(who, 1)),
    (SyncProgressState, "sync_now", {}, "error", sync.start_sync),
    (SyncSettingsState, "sync_now", {}, "message", sync.start_sync),
    (RolesState, "delete", {"key": "custom-1"}, "message", lambda who: roles.delete_custom_role(who, "custom-1")),
    (StripeConnectionState, "recheck", {}, "message", stripe_keys.recheck_permissions),
    (StripeConnectionState, "disconnect", {}, "message", stripe_keys.disconnect_stripe),
]


@pytest.mark.parametrize(
    ("state", "handler", "payload", "var", "service"), REFUSED, ids=[f"{s.__name__}.{h}" for s, h, *_ in REFUSED]
)
def test_a_refused_action_shows_the_services_words_in_the_pages_message(
    pipeline: Pipeline,
    caplog: pytest.LogCaptureFixture,
    viewer: Actor,
    state: type[BaseState],
    handler: str,
    payload: dict[str, Any],
    var: str,
    service: Callable[[Actor], object],
) -> None:
    with pytest.raises(PermissionDenied) as refused:
        service(viewer)
    caplog.set_level(logging.WARNING)
    sent = _tab(pipeline, "viewer", "/dashboard").send(state, handler, payload)
    assert sent.last(state, var) == refused.value.message
    if var == "message":
        assert sent.last(state, "message_kind") == "error"
    assert not _recovered(sent)
    assert not _errors(caplog), caplog.text[-2000:]


# Handlers whose own code expects no Billy error from this call: before, Reflex logged it as a
# crash (with a traceback) and the page showed nothing of it.
UNEXPECTED_BILLY_ERRORS = [
    (TeamState, "load", {}, team, "list_team", "message"),
    (PlanState, "load", {}, organization, "get_organization", "message"),
    (SyncSettingsState, "load", {}, stripe_events, "overview", "message"),
    (AuditViewerState, "export", {}, audit_viewer, "export", "message"),  # a generator
    (ChargesState, "refresh", {}, reports, "search_charges", "error"),
]


@pytest.mark.parametrize(
    ("state", "handler", "payload", "module", "function", "var"),
    UNEXPECTED_BILLY_ERRORS,
    ids=[f"{s.__name__}.{h}" for s, h, *_ in UNEXPECTED_BILLY_ERRORS],
)
def test_a_billy_error_no_handler_expects_is_shown_in_words_not_logged_as_a_crash(
    pipeline: Pipeline,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    state: type[BaseState],
    handler: str,
    payload: dict,
    module: Any,
    function: str,
    var: str,
) -> None:
    words = "Stripe did not answer in time. Try again in a minute."

    def unreachable(*args: object, **kwargs: object) -> None:
        raise StripeUnreachable(words)

    monkeypatch.setattr(module, function, unreachable)
    caplog.set_level(logging.WARNING)
    sent = _tab(pipeline, "owner", "/dashboard").send(state, handler, payload)
    assert sent.last(state, var) == words
    assert not _errors(caplog), caplog.text[-2000:]
    if handler == "export":
        assert sent.last(AuditViewerState, "exporting") is False


# --- (c) anything else: an error id on the page, the traceback in the log under the same id -----


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom")


# (state, handler, payload, service module and function that fails, where the id shows)
UNEXPECTED = [
    (TeamState, "load", {}, team, "list_team", "message"),
    (PlanState, "choose", {"plan": "starter"}, organization, "choose_plan", "message"),
    (ApprovalsState, "load", {}, refund_requests, "my_requests", "message"),
    (ChargesState, "apply", {"form": {}}, reports, "search_charges", "error"),  # the list pages' mixin
    (AuditViewerState, "export", {}, audit_viewer, "export", "message"),  # a generator
    (TeamState, "send_invites", {}, team, "invite_members", "toast"),  # a generator, the wizard's too
    (RefundState, "start", {"charge_id": "ch_1"}, billing, "get_charge", "toast"),  # no dialog open yet
    (SessionState, "require_member", {}, organization, "get_organization", "toast"),
]


@pytest.mark.parametrize(
    ("state", "handler", "payload", "module", "function", "shown_in"),
    UNEXPECTED,
    ids=[f"{s.__name__}.{h}" for s, h, *_ in UNEXPECTED],
)
def test_an_unexpected_error_shows_an_error_id_and_logs_its_traceback_under_it(
    pipeline: Pipeline,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    state: type[BaseState],
    handler: str,
    payload: dict,
    module: Any,
    function: str,
    shown_in: str,
) -> None:
    tab = _tab(pipeline, "owner", "/dashboard")
    if handler == "send_invites":
        tab.send(TeamState, "set_row_email", {"index": 0, "email": "new@example.com"})
    monkeypatch.setattr(module, function, _boom)
    caplog.set_level(logging.WARNING)
    sent = tab.send(state, handler, payload)

    shown = " ".join(sent.toasts()) if shown_in == "toast" else sent.last(state, shown_in)
    found = re.search(r"error id ([0-9a-f]{8})\b", shown)
    assert found, shown
    assert "boom" not in sent.text and "RuntimeError" not in sent.text
    error_id = found.group(1)
    logged = [r for r in _errors(caplog) if f"error id {error_id}" in r.getMessage()]
    assert len(logged) == 1, caplog.text[-3000:]
    assert f"{state.__name__}.{handler}" in logged[0].getMessage()  # where it happened
    assert "RuntimeError: boom" in (logged[0].exc_text or "")  # the traceback, for whoever quotes the id
    if handler == "send_invites":
        assert sent.last(TeamState, "sending") is False
    if handler == "export":
        assert sent.last(AuditViewerState, "exporting") is False


# --- the helper itself ------------------------------------------------------------------------------


def test_service_calls_run_off_the_event_loop(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    ran_on: list[threading.Thread] = []

    def list_team(actor: Actor, now: object = None) -> None:
        ran_on.append(threading.current_thread())
        raise PermissionDenied("Only the Owner can see the team.")

    monkeypatch.setattr(team, "list_team", list_team)
    _tab(pipeline, "owner", "/settings/team").send(TeamState, "load")
    assert ran_on and ran_on[0] is not pipeline._thread  # not the thread running the event loop


def test_every_async_handler_of_a_signed_in_page_is_guarded() -> None:
    """New handlers get the same answers: a signed-in page's async handler is `guarded`, unless it
    calls no service (`actor` is the helper itself; `after_refresh` closes the socket) or runs in
    the background (it changes state only inside `async with self`, so it answers there)."""
    unguarded = []
    for cls in billy_state_classes():
        if not issubclass(cls, SessionState):
            continue  # the public entry pages: Reflex's own handler logs their surprises with an id
        for name, handler in cls.event_handlers.items():
            fn = handler.fn
            if name in {"actor", "after_refresh"} or getattr(fn, "_reflex_background_task", False):
                continue
            is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
            if is_async and not hasattr(fn, "__wrapped__"):
                unguarded.append(f"{cls.__name__}.{name}")
    assert unguarded == []


def test_no_state_module_runs_threads_or_catches_an_ended_session_itself() -> None:
    """The copies stay gone: the thread hop (`blocking.in_thread`, never `asyncio.to_thread`) and
    `except NotAuthenticated` live in `off_loop`."""
    found = []
    for path in sorted(STATE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "to_thread":
                found.append(f"{path.name}:{node.lineno} to_thread")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "in_thread":
                found.append(f"{path.name}:{node.lineno} in_thread")
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                names = {n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)}
                if "NotAuthenticated" in names:
                    found.append(f"{path.name}:{node.lineno} except NotAuthenticated")
    # `off_loop`: the one thread hop and the one conversion. The live follower, a background
    # task, also stops on a bare `NotAuthenticated` (its own test raises one).
    assert Counter(f.split(":")[0] for f in found) == {"session.py": 2, "live.py": 1}, found
