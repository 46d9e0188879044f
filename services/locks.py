"""Named locks that hold within a process and, on PostgreSQL, across worker processes.

A refund takes its charge's lock (so two refunds of one charge cannot race past a cap) and,
briefly, its member's spend lock (so refunds of different charges cannot race past a daily
budget). Within a process a `threading.Lock` per name; on PostgreSQL also a session advisory
lock on the name, held for the whole block on a connection of its own, opened for it outside
the store's pool: a lock held while its block reads and writes through the pool must not take
one of the pool's connections, or twenty refunds at once hold every connection and each waits
for one more. SQLite instances run a single worker, so the process lock is the whole story
there. Always take a charge's lock before a member's, never the other way round.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from services.db import get_engine


class _Entry:
    """A name's process lock and how many threads hold or wait for it: the entry goes when the
    last one leaves, so a name per charge does not grow the table for ever."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


_locks: dict[str, _Entry] = {}
_locks_guard = threading.Lock()


@contextmanager
def _process_lock(name: str) -> Iterator[None]:
    with _locks_guard:
        entry = _locks.get(name) or _locks.setdefault(name, _Entry())
        entry.users += 1
    try:
        with entry.lock:
            yield
    finally:
        with _locks_guard:
            entry.users -= 1
            if entry.users == 0:
                del _locks[name]


def held_names() -> int:
    """How many names have a holder or a waiter in this process (the table's size)."""
    with _locks_guard:
        return len(_locks)


@contextmanager
def named_lock(name: str) -> Iterator[None]:
    """Hold the lock called `name` for the block, in this process and across workers."""
    with _process_lock(name):
        engine = get_engine()
        if engine.dialect.name != "postgresql":
            yield
            return
        key = {"k": name}
        with lock_engine(engine.url.render_as_string(hide_password=False)).connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), key)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), key)
                conn.commit()


@contextmanager
def try_named_lock(name: str) -> Iterator[bool]:
    """Hold the lock called `name` for the block if nobody holds it now: yields True when taken,
    False (at once, without waiting) when a thread or, on PostgreSQL, another worker holds it. A
    worker that died lets its PostgreSQL locks go with its connection."""
    with _locks_guard:
        entry = _locks.get(name) or _locks.setdefault(name, _Entry())
        entry.users += 1
    try:
        if not entry.lock.acquire(blocking=False):
            yield False
            return
        try:
            engine = get_engine()
            if engine.dialect.name != "postgresql":
                yield True
                return
            key = {"k": name}
            with lock_engine(engine.url.render_as_string(hide_password=False)).connect() as conn:
                taken = conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), key).scalar()
                try:
                    yield bool(taken)
                finally:
                    if taken:
                        conn.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), key)
                    conn.commit()
        finally:
            entry.lock.release()
    finally:
        with _locks_guard:
            entry.users -= 1
            if entry.users == 0:
                del _locks[name]


@lru_cache(maxsize=4)
def lock_engine(url: str) -> sa.Engine:
    """Connections for advisory locks only: opened per lock, closed with it, never pooled."""
    return sa.create_engine(url, poolclass=NullPool)
