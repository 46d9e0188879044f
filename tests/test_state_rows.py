"""What the state sends the pages: typed rows whose flags are booleans, and choices as enums.

Rows used to be dicts of texts with flags spelled `"yes"` / `""` and compared in the pages as
`row["x"] == "yes"`; a choice such as the refund dialog's mode was any string, coerced by hand.
These run through Reflex's real event pipeline (and the gate), as a browser tab would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from reflex_base.utils.format import json_dumps

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.event_gate import MALFORMED_MESSAGE
from billy_app.state.approvals import ApprovalsState, Decision
from billy_app.state.audit_viewer import AuditViewerState, VerifyOutcome
from billy_app.state.charges import ChargesState
from billy_app.state.refund import RefundMode, RefundState
from billy_app.state.roles import RoleRow, RolesState
from billy_app.state.session import SessionState
from billy_app.state.team import MemberRow, TeamState
from services import identity
from services.permissions import Actor
from tests.conftest import OWNER_EMAIL, counts_only_late, member_actor
from tests.reflex_events import Pipeline, Sent, Tab, event_pipeline

VIEWER_EMAIL = "viewer@example.com"


@pytest.fixture
def pipeline(owner: Actor) -> Iterator[Pipeline]:
    member_actor("read_only", VIEWER_EMAIL)
    with event_pipeline() as running:
        yield running


def _wire(sent: Sent) -> str:
    """The deltas as Reflex serializes them for the browser."""
    return json_dumps(list(sent.deltas))


def test_team_rows_say_who_is_owner_with_a_boolean(pipeline: Pipeline) -> None:
    sent = pipeline.owner_tab("/settings/team").send(TeamState, "load")
    members = sent.last(TeamState, "members")
    assert all(isinstance(member, MemberRow) for member in members)
    assert {member.email: member.is_owner for member in members} == {OWNER_EMAIL: True, VIEWER_EMAIL: False}
    assert [member.email for member in sent.last(TeamState, "transferable")] == [VIEWER_EMAIL]
    assert '"is_owner":true' in _wire(sent).replace(" ", "") and '"yes"' not in _wire(sent)


def test_role_rows_mark_the_built_in_roles_with_a_boolean(pipeline: Pipeline) -> None:
    rows = pipeline.owner_tab("/settings/roles").send(RolesState, "load").last(RolesState, "rows")
    assert rows and all(isinstance(row, RoleRow) and row.built_in is True for row in rows)


def test_an_invite_with_no_address_is_a_result_not_sent(pipeline: Pipeline) -> None:
    sent = pipeline.owner_tab("/settings/team").send(TeamState, "send_invites")
    (result,) = sent.last(TeamState, "invite_results")
    assert (result.sent, result.message) == (False, "Enter at least one email address.")


def test_the_refund_mode_is_an_enum_and_the_gate_refuses_any_other_value(pipeline: Pipeline) -> None:
    tab = pipeline.owner_tab("/customers/cus_1")
    assert tab.send(RefundState, "set_mode", {"mode": "partial"}).last(RefundState, "mode") is RefundMode.PARTIAL
    refused = tab.send(RefundState, "set_mode", {"mode": "half"})
    assert MALFORMED_MESSAGE in " ".join(refused.toasts())
    assert not any("mode_rx_state_" in delta.get(RefundState.get_full_name(), {}) for delta in refused.deltas)
    assert tab.send(RefundState, "set_mode", {"mode": "full"}).last(RefundState, "mode") is RefundMode.FULL


def test_a_decision_is_approve_or_decline_and_nothing_else(pipeline: Pipeline) -> None:
    tab = pipeline.owner_tab("/approvals")
    refused = tab.send(ApprovalsState, "open_decision", {"request_id": "1", "kind": "maybe"})
    assert MALFORMED_MESSAGE in " ".join(refused.toasts())
    sent = tab.send(ApprovalsState, "open_decision", {"request_id": "999", "kind": "decline"})
    assert sent.last(ApprovalsState, "decision_kind") is Decision.DECLINE
    assert sent.last(ApprovalsState, "message") == "That request is no longer waiting; the list is up to date."


def test_verify_reports_its_outcome_as_an_enum_sent_as_its_word(pipeline: Pipeline) -> None:
    sent = pipeline.owner_tab("/settings/audit").send(AuditViewerState, "verify")
    assert sent.last(AuditViewerState, "verify_kind") is VerifyOutcome.OK
    assert '"ok"' in _wire(sent)


def test_the_list_pages_filter_bar_is_named_filters(pipeline: Pipeline) -> None:
    sent = pipeline.owner_tab("/charges").send(ChargesState, "set_filter", {"name": "currency", "value": "usdx"})
    assert sent.last(ChargesState, "filters") == {"currency": "usd"}  # cut to the field's length


def test_the_audit_filter_bar_keeps_what_was_typed_under_filter_names(pipeline: Pipeline) -> None:
    sent = pipeline.owner_tab("/settings/audit").send(
        AuditViewerState, "apply", {"form_data": {"person": "  nobody@example.com ", "action": "audit.verify"}}
    )
    assert sent.last(AuditViewerState, "filter_person") == "nobody@example.com"
    assert sent.last(AuditViewerState, "filter_action") == "audit.verify"


def test_the_list_pager_says_which_rows_of_how_many(pipeline: Pipeline) -> None:
    from billy_app.state.list_page import range_label
    from services import mirror
    from services.db import session_scope

    with session_scope() as session:
        charges = [
            {
                "id": f"ch_count{n:02}",
                "object": "charge",
                "amount": 100 + n,
                "currency": "usd",
                "created": 1_700_000_000 + n,
            }
            for n in range(60)
        ]
        mirror.write_objects(session, "charge", charges, 1_800_000_000)
    tab = pipeline.owner_tab("/charges")
    # A page of the dashboard's lists is 50 rows (the API's default page is its own).
    assert tab.send(ChargesState, "load").last(ChargesState, "range_label") == "1–50 of 60"
    assert tab.send(ChargesState, "next_page").last(ChargesState, "range_label") == "51–60 of 60"
    assert tab.send(ChargesState, "previous_page").last(ChargesState, "range_label") == "1–50 of 60"
    assert range_label(3, 50, "10,000+") == "101–150 of 10,000+" and range_label(1, 0, "0") == ""
    assert range_label(2, 50, "") == "51–100"  # counting was given up: the rows without a total


def _labels(sent: Sent, state: Any) -> list[str]:
    """Each "1–50 of 60" sent, in order (an empty list's "" left out)."""
    name, key = state.get_full_name(), "range_label_rx_state_"
    return [d[name][key] for d in sent.deltas if d.get(name, {}).get(key)]


def test_a_total_too_dear_for_the_page_follows_its_rows(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows are sent without waiting for their total; the total comes after, on its own."""
    from billy_app.state.customers import CustomersState

    _sixty_charges()
    counts_only_late(monkeypatch)
    tab = pipeline.owner_tab("/charges")
    assert _labels(tab.send(ChargesState, "load"), ChargesState) == ["1–50", "1–50 of 60"]
    # The next page of the same filters shows the total they had at once (then counted again).
    assert _labels(tab.send(ChargesState, "next_page"), ChargesState)[0] == "51–60 of 60"
    tab.send(ChargesState, "set_filter", {"name": "status", "value": "failed"})
    assert _labels(tab.send(ChargesState, "apply", {"form": {}}), ChargesState) == []  # none failed: no rows
    from services import mirror
    from services.db import session_scope

    people = [
        {"id": f"cus_late{n}", "object": "customer", "email": f"p{n}@example.com", "created": 1_700_000_000 + n}
        for n in range(3)
    ]
    with session_scope() as session:
        mirror.write_objects(session, "customer", people, 1_800_000_000)
    customers = pipeline.owner_tab("/customers").send(CustomersState, "load")
    assert _labels(customers, CustomersState) == ["1–3", "1–3 of 3"]


def test_the_charges_list_offers_refund_only_to_roles_that_can_refund(pipeline: Pipeline) -> None:
    from services import mirror
    from services.db import session_scope

    with session_scope() as session:
        paid = {"id": "ch_paid", "object": "charge", "amount": 900, "currency": "usd", "created": 1_700_000_000}
        failed = {**paid, "id": "ch_failed", "status": "failed", "created": 1_700_000_001}
        mirror.write_objects(session, "charge", [{**paid, "status": "succeeded"}, failed], 1_800_000_000)
    owner_sent = pipeline.owner_tab("/charges").send(ChargesState, "load")
    assert owner_sent.last(ChargesState, "refund_shown") is True
    refundable = {row.id: row.refundable for row in owner_sent.last(ChargesState, "rows")}
    assert refundable == {"ch_paid": True, "ch_failed": False}

    tokens = identity.login(VIEWER_EMAIL, "another-long-password", "127.0.0.1", "pytest-tab")
    viewer = pipeline.tab(f"{identity.ACCESS_COOKIE}={tokens.access}", path="/charges")
    viewer_sent = viewer.send(ChargesState, "load")
    assert len(viewer_sent.last(ChargesState, "rows")) == 2  # Read Only sees the charges, without "Refund"
    assert viewer_sent.last(ChargesState, "refund_shown") is False


# --- the main lists, read into a tab while its first page idles (issue 14, first-visit speed) -----


def _sixty_charges() -> list[str]:
    """Sixty charges in the store; their ids, newest first."""
    from services import mirror
    from services.db import session_scope

    charges = [
        {"id": f"ch_warm{n:02}", "object": "charge", "amount": 100 + n, "currency": "usd", "created": 1_700_000_000 + n}
        for n in range(60)
    ]
    with session_scope() as session:
        mirror.write_objects(session, "charge", charges, 1_800_000_000)
    return [c["id"] for c in reversed(charges)]


def _charge_ids(tab: Tab) -> list[str]:
    return [row.id for row in tab.hydrate().last(ChargesState, "rows")]


def _soon(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether `check` comes true within `seconds` (the warm-up is a background task)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_live_list_keeps_its_total_on_screen_while_a_store_change_is_recounted(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billy_app.state import live
    from services import mirror, notices
    from services.db import session_scope

    _sixty_charges()
    counts_only_late(monkeypatch)
    connected = [True]  # the pipeline has no socket for the follower to look for
    monkeypatch.setattr(live, "_tab_connected", lambda token: connected[0])
    tab = pipeline.owner_tab("/charges")
    assert _labels(tab.send(ChargesState, "load"), ChargesState)[-1] == "1–50 of 60"
    tab.start(ChargesState, "follow")
    new = {"id": "ch_warm60", "object": "charge", "amount": 160, "currency": "usd", "created": 1_700_000_060}
    with session_scope() as session:
        mirror.write_objects(session, "charge", [new], 1_800_000_000)
    pushed: list[str] = []

    def recounted() -> bool:
        notices.publish("charge", ["ch_warm60"])  # again until the follower, starting, has heard it
        pushed[:] = _labels(tab.pushed, ChargesState)
        return "1–50 of 61" in pushed

    try:
        assert _soon(recounted), pushed
        assert all(label.startswith("1–50 of ") for label in pushed)  # never "1–50" alone meanwhile
    finally:
        connected[0] = False  # the tab closes: its follower stops at the next notice
        notices.publish("charge", ["ch_warm60"])
        time.sleep(0.5)


def test_a_live_list_re_read_to_the_same_page_sends_the_tab_nothing(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store change that leaves the page on screen as it was (here, a charge on the second page)
    is read again, but nothing goes to the tab, whose page would render again for nothing; a change
    to a row it shows is sent."""
    from billy_app.state import live
    from services import mirror, notices, reports
    from services.db import session_scope

    _sixty_charges()
    connected = [True]  # the pipeline has no socket for the follower to look for
    monkeypatch.setattr(live, "_tab_connected", lambda token: connected[0])
    reads = [0]
    search_charges = reports.search_charges

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads[0] += 1
        return search_charges(*args, **kwargs)

    monkeypatch.setattr(reports, "search_charges", counted)
    tab = pipeline.owner_tab("/charges")
    tab.send(ChargesState, "load")
    tab.start(ChargesState, "follow")
    oldest = {"id": "ch_warm00", "object": "charge", "amount": 555, "currency": "usd", "created": 1_700_000_000}
    with session_scope() as session:  # on the second page
        mirror.write_objects(session, "charge", [oldest], 1_800_000_001)
    read_before = reads[0]

    def re_read() -> bool:
        notices.publish("charge", ["ch_warm00"])  # again until the follower, starting, has heard it
        return reads[0] > read_before

    name = ChargesState.get_full_name()
    try:
        assert _soon(re_read), "the follower did not read the list again"
        time.sleep(0.5)  # anything that read would send has been sent
        assert not [d for d in tab.pushed.deltas if d.get(name)], tab.pushed.deltas
        newest = {"id": "ch_warm59", "object": "charge", "amount": 999, "currency": "usd", "created": 1_700_000_059}
        with session_scope() as session:  # the page's first row
            mirror.write_objects(session, "charge", [newest], 1_800_000_002)

        def sent() -> bool:
            notices.publish("charge", ["ch_warm59"])
            return any(d.get(name, {}).get("rows_rx_state_") for d in tab.pushed.deltas)

        assert _soon(sent), "a change to a row on screen was not sent"
    finally:
        connected[0] = False  # the tab closes: its follower stops at the next notice
        notices.publish("charge", ["ch_warm59"])
        time.sleep(0.5)


def test_a_signed_in_tab_holds_the_lists_first_pages_before_they_are_opened(pipeline: Pipeline) -> None:
    newest = _sixty_charges()
    tab = pipeline.owner_tab("/dashboard")
    tab.send(SessionState, "require_member")
    assert _soon(lambda: _charge_ids(tab) == newest[:50]), "the charges list was not read ahead"
    assert tab.hydrate().last(ChargesState, "range_label") == "1–50 of 60"
    # Opening the list reads it again, as its page always does: the same rows, nothing lost, and
    # nothing sent again, as the tab holds them already.
    tab.path = "/charges"
    opened = tab.send(ChargesState, "load")
    assert "rows_rx_state_" not in json.dumps([d.get(ChargesState.get_full_name(), {}) for d in opened.deltas])
    assert _charge_ids(tab) == newest[:50]


def test_the_warm_up_leaves_a_list_the_tab_already_read_as_it_was(pipeline: Pipeline) -> None:
    newest = _sixty_charges()
    tab = pipeline.owner_tab("/charges")
    tab.send(ChargesState, "load")  # the landing page's own loads, before the warm-up wakes
    assert tab.send(ChargesState, "next_page").last(ChargesState, "range_label") == "51–60 of 60"
    tab.send(SessionState, "require_member")  # its warm-up runs before this returns
    assert tab.hydrate().last(ChargesState, "range_label") == "51–60 of 60"
    assert _charge_ids(tab) == newest[50:]


def test_a_warm_up_started_for_one_member_writes_nothing_once_another_signs_in(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billy_app.state import list_warmup

    _sixty_charges()
    monkeypatch.setattr(list_warmup, "AFTER_SECONDS", 1.0)
    owner = pipeline.owner_tab("/dashboard")
    viewer = identity.login(VIEWER_EMAIL, "another-long-password", "127.0.0.1", "pytest-tab")
    same_tab = pipeline.tab(f"{identity.ACCESS_COOKIE}={viewer.access}", path="/dashboard", token=owner.token)
    # The Owner's page starts the warm-up (this waits while it runs); meanwhile, before it wakes,
    # the viewer signs in in the same tab and the gate resets the tab for the new session.
    started = threading.Thread(target=owner.send, args=(SessionState, "require_member"))
    started.start()
    time.sleep(0.3)
    same_tab.hydrate()
    started.join(10)
    assert _charge_ids(same_tab) == [], "the Owner's warm-up wrote into the next member's tab"


def test_tabs_shown_the_same_page_convert_its_rows_once_and_see_a_store_change(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tabs reading the same page at the same store generation are handed one shared page
    (`reports.shared_pages`); its rows become table rows once for all of them, and a store change
    brings every tab the new rows, not the views of the page before."""
    from billy_app.state import list_page
    from billy_app.state.charges import charge_row_view
    from services import mirror, notices
    from services.db import session_scope

    newest = _sixty_charges()
    converted: list[str] = []

    def counted_view(row: Any) -> Any:
        converted.append(row.id)
        return charge_row_view(row)

    tabs = [pipeline.owner_tab("/charges") for _ in range(3)]
    monkeypatch.setattr(ChargesState, "_view", staticmethod(counted_view))
    try:
        shown = [[row.id for row in tab.send(ChargesState, "load").last(ChargesState, "rows")] for tab in tabs]
        assert shown == [newest[:50]] * 3
        assert sorted(converted) == sorted(newest[:50])  # fifty rows converted once, not once per tab
        new = {"id": "ch_warm60", "object": "charge", "amount": 160, "currency": "usd", "created": 1_700_000_060}
        with session_scope() as session:
            mirror.write_objects(session, "charge", [new], 1_800_000_000)
        notices.publish("charge", ["ch_warm60"])
        again = [[row.id for row in tab.send(ChargesState, "load").last(ChargesState, "rows")] for tab in tabs]
        assert again == [["ch_warm60", *newest[:49]]] * 3
        assert len(converted) == 100  # the new page's fifty rows, once
    finally:
        list_page._kept_views.clear()  # no other test gets views this one counted
