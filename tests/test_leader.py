"""One worker of several runs the store's chores (issue 16): event polling, reconciliation and
pruning must not run once per worker. Real PostgreSQL advisory locks on connections of their own,
as two worker processes would hold them; SQLite instances have one worker, which leads."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from services.db import get_engine
from services.leader import CHORES_LOCK, Leadership
from tests.conftest import _make_instance
from tests.waiting import eventually


class Worker:
    """A worker's side of the election: whether its chores run now, and how often they started."""

    def __init__(self, name: str) -> None:
        self.name, self.started, self.running = name, 0, threading.Event()
        self.leadership = Leadership(self._elected, self.running.clear, name=CHORES_LOCK, retry_seconds=0.2)

    def _elected(self) -> None:
        self.started += 1
        self.running.set()


@pytest.fixture
def postgres_store(tmp_path, monkeypatch, templates):  # type: ignore[no-untyped-def]
    """Several workers share one store only on PostgreSQL; SQLite instances run one worker."""
    yield from _make_instance("postgresql", tmp_path, monkeypatch, templates)


@pytest.fixture
def workers():  # type: ignore[no-untyped-def]
    made: list[Worker] = []
    yield made
    for worker in made:
        worker.leadership.stop()


def test_the_only_worker_leads_at_once(any_store, workers) -> None:  # type: ignore[no-untyped-def]
    worker = Worker("alone")
    workers.append(worker)
    worker.leadership.start()
    assert worker.leadership.wait_until_leading(10) and worker.running.wait(5)
    worker.leadership.stop()
    assert not worker.leadership.leading and not worker.running.is_set()  # chores stopped with it


def test_of_two_workers_one_runs_the_chores_and_the_other_takes_over_when_it_goes(postgres_store, workers) -> None:  # type: ignore[no-untyped-def]
    first, second = Worker("first"), Worker("second")
    workers.extend([first, second])
    first.leadership.start()
    assert first.running.wait(10)
    second.leadership.start()
    time.sleep(1.0)  # five of the second worker's tries
    assert not second.running.is_set() and second.started == 0
    first.leadership.stop()
    assert not first.running.is_set()
    assert second.running.wait(5) and second.started == 1


def test_a_leader_whose_lock_connection_dies_stops_its_chores_and_another_takes_over(postgres_store, workers) -> None:  # type: ignore[no-untyped-def]
    """As when the leader's process is killed or its network drops: PostgreSQL ends the session,
    the lock goes with it, and the old leader must notice rather than run on beside the new one."""
    first, second = Worker("first"), Worker("second")
    workers.extend([first, second])
    first.leadership.start()
    assert first.running.wait(10)
    second.leadership.start()
    with get_engine().connect() as admin:
        holders = (
            admin.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
            .scalars()
            .all()
        )
        assert len(holders) == 1
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": holders[0]})
    assert eventually(lambda: not first.running.is_set())
    assert second.running.wait(5)
    assert eventually(lambda: first.leadership.leading is False)
    time.sleep(0.6)  # the old leader keeps trying, and fails while the new one holds the lock
    assert not first.running.is_set() and first.started == 1 and second.started == 1


def test_the_app_runs_its_store_chores_only_while_it_leads(any_store) -> None:  # type: ignore[no-untyped-def]
    """The instance wires its periodic chores to the election, not to every worker's start."""
    from billy_app import billy_app

    leadership = billy_app.chores_leadership
    assert {chore.name for chore in billy_app.periodic_chores} == {
        "audit-summaries",
        "spend-alerts",
        "write-reconciliation",
        "store-pruning",
    }
    leadership.start()  # what each worker's start does, beside its own per-process hooks
    try:
        assert leadership.wait_until_leading(10)
        assert eventually(lambda: all(chore.running for chore in billy_app.periodic_chores))
    finally:
        leadership.stop()
    assert eventually(lambda: not any(chore.running for chore in billy_app.periodic_chores))
