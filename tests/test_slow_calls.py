"""A slow query in some tabs never holds up another tab (issue 16): every service call a handler
makes waits in a thread of its own, off the event loop, and there are threads enough for a few
slow ones at once. Reflex's real event pipeline and a real PostgreSQL lock make the slow query:
the customers table is locked, so a customers list waits on it, while the Team page reads other
tables and must answer at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.state.customers import CustomersState
from billy_app.state.team import TeamState
from services.db import get_engine
from tests.conftest import OWNER_EMAIL, _make_instance, _signup_owner
from tests.reflex_events import Pipeline, Sent, event_pipeline

SLOW_TABS = 8  # more than asyncio's default pool has threads on a 2-core machine (cpu + 4)
LOCK_SECONDS = 4.0


@pytest.fixture
def pipeline(tmp_path, monkeypatch, templates) -> Iterator[Pipeline]:  # type: ignore[no-untyped-def]
    """PostgreSQL, where a read can be made to wait on a lock (SQLite readers never wait)."""
    for _ in _make_instance("postgresql", tmp_path, monkeypatch, templates):
        _signup_owner()
        with event_pipeline() as running:
            yield running


def test_tabs_waiting_on_a_slow_query_do_not_hold_up_another_tab(pipeline: Pipeline) -> None:
    slow_tabs = [pipeline.owner_tab("/customers") for _ in range(SLOW_TABS)]
    team_tab = pipeline.owner_tab("/settings/team")
    answers: list[Sent] = []
    with get_engine().connect() as holder:
        holder.execute(sa.text("LOCK TABLE stripe_customer IN ACCESS EXCLUSIVE MODE"))
        waiting = [
            threading.Thread(target=lambda t=t: answers.append(t.send(CustomersState, "load"))) for t in slow_tabs
        ]
        for thread in waiting:
            thread.start()
        time.sleep(1.0)  # every slow tab's query is now waiting on the lock
        began = time.monotonic()
        team = team_tab.send(TeamState, "load")
        answered_in = time.monotonic() - began
        still_waiting = sum(thread.is_alive() for thread in waiting)
        holder.rollback()  # the lock goes: the slow tabs finish
    for thread in waiting:
        thread.join(30)
    assert [member.email for member in team.last(TeamState, "members")] == [OWNER_EMAIL]
    assert still_waiting == SLOW_TABS  # the Team page answered while every slow tab still waited
    assert answered_in < 1.5, f"the Team page took {answered_in:.2f} s behind {SLOW_TABS} slow tabs"
    assert len(answers) == SLOW_TABS and all(a.last(CustomersState, "error") == "" for a in answers)
