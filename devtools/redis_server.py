"""A private `redis-server` a test owns: its own port and folder, stopped, killed and started again at will.

Tests that take Redis away must never touch the shared server other tests use, so they start one
of these. It keeps an append-only file written on every command, so a `kill()` (SIGKILL: a crash,
no goodbye) followed by `start()` on the same port brings back what it held, as a managed Redis's
failover does. Keyspace notifications are on from the start, as Reflex needs them and as a managed
Redis is configured to have them (a server's own `CONFIG SET` is lost when it restarts).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from devtools.app_runner import free_port

REFLEX_KEYSPACE_EVENTS = "K$sgxe"  # reflex.istate.manager.redis.NOTIFY_KEYSPACE_EVENTS


class RedisServer:
    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [
                *(binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder)),
                *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
                *("--notify-keyspace-events", REFLEX_KEYSPACE_EVENTS),
            ],
            stdout=(self.folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if redis.Redis.from_url(self.url(), socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{(self.folder / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """Gone at once, as a crash: connections drop, nothing more is answered."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None
