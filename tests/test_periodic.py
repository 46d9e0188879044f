"""The periodic chores keep running after a failure (a flush that raised once must not stop the next)."""

from __future__ import annotations

import logging
import threading

import pytest

from services.periodic import Every


def test_a_failing_run_is_logged_and_the_next_run_still_comes(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    third = threading.Event()

    def job() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("the store was briefly unreachable")
        if len(runs) == 3:
            third.set()

    chore = Every(0.01, job, "test-chore")
    with caplog.at_level(logging.ERROR):
        chore.start()
        assert third.wait(5)
        chore.stop()
    assert "The periodic test-chore failed" in caplog.text
