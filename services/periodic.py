"""Small background chores that run every so often in the instance process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Every:
    """Run `job` every `seconds` on a daemon thread; a failure is logged and the next run still comes.
    `immediately` also runs it as soon as it starts (a job that catches up after a restart)."""

    def __init__(self, seconds: float, job: Callable[[], object], name: str, *, immediately: bool = False) -> None:
        self.seconds, self.job, self.name, self.immediately = seconds, job, name, immediately
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=f"billy-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        """Started and not stopped since."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def _loop(self) -> None:
        if self.immediately:
            self._run()
        while not self._stop.wait(self.seconds):
            self._run()

    def _run(self) -> None:
        try:
            self.job()
        except Exception:
            log.exception("The periodic %s failed; it runs again in %.0f s.", self.name, self.seconds)
