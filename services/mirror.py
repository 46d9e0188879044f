"""The Stripe mirror: the one write path from Stripe objects to store rows.

Every write goes through `write_objects`, which upserts by id **only where the incoming
copy is newer** than the stored one (`version_at`, the Stripe time a copy reflects), in
one statement on SQLite and PostgreSQL. So a backfill page read a minute ago cannot undo
a refund stored since, and an old event delivered late changes nothing. Child rows
(subscription items, invoice lines) are replaced together with the parent they came in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from services import resources
from services.db import insert_on_conflict
from services.models import table_of
from services.resources import StripeResource

# Every mirrored object type, by Stripe's `object` name (legacy `plan` objects are prices).
KINDS: dict[str, StripeResource] = resources.BY_OBJECT


def write_objects(
    session: Session,
    kind: str | StripeResource,
    objects: Iterable[dict[str, Any]],
    version_at: int,
    *,
    deleted: bool = False,
    replace_equal: bool = False,
) -> list[str]:
    """Upsert objects of one kind as of Stripe time `version_at`, skipping any whose stored
    copy is as new or newer (`replace_equal`: newer only, for a copy just read from Stripe).
    Returns the ids actually written (their children are replaced with them)."""
    spec = KINDS[kind] if isinstance(kind, str) else kind
    rows = []
    for obj in objects:
        row = spec.to_row(obj)
        row["version_at"] = version_at
        if deleted:
            row["deleted"] = True
        rows.append(row)
    if not rows:
        return []
    rows = list({r["id"]: r for r in rows}.values())  # one row per id in a statement
    table = table_of(spec.model)
    stmt = insert_on_conflict(session.get_bind().dialect.name, table).values(rows)
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != "id"}
    newer = (
        table.c.version_at <= stmt.excluded.version_at
        if replace_equal
        else table.c.version_at < stmt.excluded.version_at
    )
    upsert = stmt.on_conflict_do_update(index_elements=["id"], set_=updates, where=newer).returning(table.c.id)
    written = [r[0] for r in session.execute(upsert)]
    if spec.child_model is not None and spec.child_rows is not None and written:
        kept = set(written)
        parents = [r["raw"] for r in rows if r["id"] in kept]
        _replace_children(session, table_of(spec.child_model), spec.child_parent_column, spec.child_rows, parents)
    return written


def _replace_children(
    session: Session,
    child: sa.Table,
    parent_column: str,
    child_rows: Callable[[dict[str, Any]], list[dict[str, Any]]],
    parents: list[dict[str, Any]],
) -> None:
    parent_col = child.c[parent_column]
    session.execute(sa.delete(child).where(parent_col.in_([p["id"] for p in parents])))
    children = [c for p in parents for c in child_rows(p)]
    if children:
        session.execute(sa.insert(child), children)


def stored_version(session: Session, kind: str, object_id: str) -> int | None:
    """The stored copy's version, or None when the store has no such object."""
    table = table_of(KINDS[kind].model)
    return session.execute(sa.select(table.c.version_at).where(table.c.id == object_id)).scalar_one_or_none()
