"""Outages of the store, told apart from bugs, so every edge says the same plain words for them.

A PostgreSQL that goes away (a restart, a failover, the network between) surfaces as a driver
error deep in whatever the action was doing; edges turn it into `StoreUnavailable` instead of
"something went wrong" with an error id, and log one line instead of a traceback.
"""

from __future__ import annotations

import sqlalchemy as sa

from services.errors import StoreUnavailable

# SQLSTATE classes of a server that is going away or cannot take the connection: connection
# exceptions (08), operator intervention such as a shutdown or a failover (57), insufficient
# resources such as too many connections (53).
_OUTAGE_CLASSES = frozenset({"08", "57", "53"})


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.DisconnectionError):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if not hasattr(orig, "pgcode"):  # not PostgreSQL's driver (SQLite's "database is locked" is no outage)
        return False
    code = getattr(orig, "pgcode", None)
    # No SQLSTATE: the driver's own failure to reach or keep the server (refused, reset, closed).
    return code is None or str(code)[:2] in _OUTAGE_CLASSES


def store_outage(exc: BaseException) -> StoreUnavailable | None:
    """`StoreUnavailable` when `exc`, or an error it was raised from or while handling, is the
    store's connection failing; else None (a bug, or a refusal that speaks for itself)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, StoreUnavailable):
            return current
        if _is_outage(current):
            return StoreUnavailable()
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
