"""Saving the sandbox to DIR/state.pickle (only with --data-dir).

localstripe rewrites its whole store to /tmp/localstripe.pickle on every single
write (slow, and shared by every sandbox on the machine). Here state is saved at
most about once a second after writes and on clean shutdown, to a temporary file
renamed over the old one so a crash never leaves half a file.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from sandbox import state

STATE_FILE = "state.pickle"
FORMAT = 1
SAVE_INTERVAL_SECONDS = 1.0


class Persistence:
    """Loads once at start, then saves when the state is dirty."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE
        self.dirty = False
        state.on_dirty(self.mark)

    def mark(self) -> None:
        self.dirty = True

    def load(self) -> bool:
        """Restore the store and extensions; False when there is nothing saved yet."""
        if not self.path.exists():
            return False
        with self.path.open("rb") as f:
            # The sandbox's own file in the operator's data dir, never uploaded data.
            saved: dict[str, Any] = pickle.load(f)  # noqa: S301
        if saved.get("format") != FORMAT:
            raise RuntimeError(f"{self.path} was written by another sandbox version")
        state.apply(saved)
        self.dirty = False
        return True

    def save(self) -> None:
        self.dirty = False
        payload = pickle.dumps({"format": FORMAT, **state.capture()}, protocol=pickle.HIGHEST_PROTOCOL)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def run(self) -> None:
        """Debounced saving: at most one write per interval, only after changes."""
        while True:
            await asyncio.sleep(SAVE_INTERVAL_SECONDS)
            if self.dirty:
                self.save()
