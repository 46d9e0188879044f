"""One worker of several runs the instance's store-wide chores (issue 16).

Polling Stripe's events, reconciling interrupted writes, pruning the event log, flushing the
audit log's denied-attempt summaries and catching up on spend alerts each act on the whole
store: run by every worker, they would spend N times the Stripe budget on the same events and
race each other for the same rows. So the workers elect one: on PostgreSQL the holder of a
session advisory lock on a connection kept for that purpose. When the leader dies its
connection closes, PostgreSQL lets the lock go, and a waiting worker takes over within
`retry_seconds`. SQLite instances run a single worker, which always leads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa

from services.db import get_engine
from services.locks import lock_engine

log = logging.getLogger(__name__)

CHORES_LOCK = "billy-store-chores"


class Leadership:
    """Calls `on_elected` once this worker leads, and `on_deposed` if it stops leading (its lock
    connection failed, or `stop`); non-leaders try again every `retry_seconds`."""

    def __init__(
        self,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        *,
        name: str = CHORES_LOCK,
        retry_seconds: float = 3.0,
    ) -> None:
        self.name, self.retry_seconds = name, retry_seconds
        self._on_elected, self._on_deposed = on_elected, on_deposed
        self._stop = threading.Event()
        self._leading = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def wait_until_leading(self, timeout: float) -> bool:
        return self._leading.wait(timeout)

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="billy-leadership", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                engine = get_engine()
                if engine.dialect.name == "postgresql":
                    self._lead_on_postgresql(engine)
                else:  # one worker: it leads until stopped
                    self._lead_while(lambda: not self._stop.wait())
            except Exception:
                log.warning("This worker's hold on the store's chores failed; it tries again shortly.", exc_info=True)
            self._stop.wait(self.retry_seconds)

    def _lead_on_postgresql(self, engine: sa.Engine) -> None:
        key = {"k": self.name}
        with lock_engine(engine.url.render_as_string(hide_password=False)).connect() as conn:
            if not conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), key).scalar():
                conn.commit()
                return  # another worker leads

            def still_held() -> bool:
                """Wait a while, then prove the lock's connection alive (a dropped one lost the lock:
                this raises). False once stopped."""
                if self._stop.wait(self.retry_seconds):
                    return False
                conn.execute(sa.text("SELECT 1")).scalar()
                conn.commit()
                return True

            try:
                self._lead_while(still_held)
            finally:
                try:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), key)
                    conn.commit()
                except sa.exc.DBAPIError:
                    log.info("The chores' lock connection is gone, and the lock with it.")

    def _lead_while(self, still_leading: Callable[[], bool]) -> None:
        """Run the chores while `still_leading` (which blocks a while each call) says so; a raise
        from it means the lock was lost."""
        self._leading.set()
        log.debug("This worker runs the store's chores (event polling, reconciliation, pruning).")
        try:
            self._on_elected()
            while still_leading():
                pass
        finally:
            self._leading.clear()
            self._on_deposed()
