"""The Stripe mirror: the one write path from Stripe objects to store rows.

Every write goes through `write_objects`, which upserts by id **only where the incoming
copy is newer** than the stored one (`version_at`, the Stripe time a copy reflects), in
one statement on SQLite and PostgreSQL. So a backfill page read a minute ago cannot undo
a refund stored since, and an old event delivered late changes nothing. Child rows
(subscription items, invoice lines) are replaced together with the parent they came in, and
objects a parent carries in full (a customer's expanded cards) are written with it.

A write is two steps: `prepare` (objects to rows, the raw JSON serialized: Python work that
needs no session) and `write_prepared` (the statements). `write_objects` does both; the
backfill prepares a page in the thread that read it, so its single writer thread only runs
the statements (services/sync.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Session

from services import resources
from services.db import insert_on_conflict
from services.models import table_of
from services.resources import StripeResource

# Every mirrored object type, by Stripe's `object` name (legacy `plan` objects are prices).
KINDS: dict[str, StripeResource] = resources.BY_OBJECT


@dataclass
class Prepared:
    """Objects of one kind made into rows, ready to be written as of Stripe time `version_at`."""

    spec: StripeResource
    rows: list[dict[str, Any]]  # one per id; `raw` already JSON text
    parents: dict[str, dict[str, Any]]  # id → the object, for child rows and carried objects
    deleted: bool
    carried: list[Prepared] = field(default_factory=list)  # objects the rows carry in full

    @property
    def count(self) -> int:
        return len(self.rows)


def prepare(
    kind: str | StripeResource, objects: Iterable[dict[str, Any]], version_at: int, *, deleted: bool = False
) -> Prepared:
    """The rows of `objects` (one per id, the last copy kept), with what they carry in full."""
    spec = KINDS[kind] if isinstance(kind, str) else kind
    rows: dict[str, dict[str, Any]] = {}
    parents: dict[str, dict[str, Any]] = {}
    for obj in objects:
        row = spec.to_row(obj)
        row["version_at"] = version_at
        if deleted:
            row["deleted"] = True
        row["raw"] = orjson.dumps(row["raw"]).decode()  # a tenth of json.dumps's time (bench/backfill)
        rows[row["id"]] = row
        if spec.child_rows is not None or spec.embedded is not None:
            parents[row["id"]] = obj  # kept only where child rows or carried objects come from it
    carried: list[Prepared] = []
    if spec.embedded is not None and not deleted:
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for parent in parents.values():
            for obj in spec.embedded(parent):
                if obj.get("object") in KINDS:
                    by_kind.setdefault(obj["object"], []).append(obj)
        carried = [prepare(k, objs, version_at) for k, objs in by_kind.items()]
    return Prepared(spec, list(rows.values()), parents, deleted, carried)


def write_prepared(session: Session, prepared: Prepared, *, replace_equal: bool = False) -> list[str]:
    """Upsert prepared rows, skipping any whose stored copy is as new or newer (`replace_equal`:
    newer only, for a copy just read from Stripe). Returns the ids actually written; their
    children are replaced and what they carry is written with them (as fresh as they are)."""
    if not prepared.rows:
        return []
    spec = prepared.spec
    table = table_of(spec.model)
    # One statement built once per table and executed with the rows as parameters: SQLAlchemy
    # sends them as one multi-row INSERT ("insertmanyvalues"), and its compiled form is cached.
    # A statement made with `.values(rows)` was compiled afresh for every page, which cost more
    # than the database's own work on a backfill (bench/backfill).
    upsert = _upsert(session.get_bind().dialect.name, table, replace_equal)
    written = [r[0] for r in session.execute(upsert, prepared.rows)]
    if not written:
        return written
    if spec.child_model is not None and spec.child_rows is not None:
        parents = [prepared.parents[object_id] for object_id in written]
        _replace_children(session, table_of(spec.child_model), spec.child_parent_column, spec.child_rows, parents)
    if prepared.carried:
        kept = set(written)
        for carried in prepared.carried:
            # Carried by a parent that was written: a copy skipped as stale carries stale cards too.
            carriers = [p for i, p in prepared.parents.items() if i in kept]
            carried_ids = {o["id"] for p in carriers for o in (spec.embedded(p) if spec.embedded else [])}
            rows = [row for row in carried.rows if row["id"] in carried_ids]
            if rows:
                write_prepared(
                    session, Prepared(carried.spec, rows, carried.parents, False), replace_equal=replace_equal
                )
    return written


def write_objects(
    session: Session,
    kind: str | StripeResource,
    objects: Iterable[dict[str, Any]],
    version_at: int,
    *,
    deleted: bool = False,
    replace_equal: bool = False,
) -> list[str]:
    """Upsert objects of one kind as of Stripe time `version_at` (`prepare`, then
    `write_prepared`). Returns the ids actually written."""
    return write_prepared(session, prepare(kind, objects, version_at, deleted=deleted), replace_equal=replace_equal)


@functools.cache
def _upsert(dialect: str, table: sa.Table, replace_equal: bool) -> Any:
    """INSERT … ON CONFLICT (id) DO UPDATE, only where the incoming copy is newer (or as new, with
    `replace_equal`), returning the ids written. `raw` comes as JSON text (`prepare`)."""
    stmt = insert_on_conflict(dialect, table).values(raw=sa.bindparam("raw", type_=sa.Text()))
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != "id"}
    newer = (
        table.c.version_at <= stmt.excluded.version_at
        if replace_equal
        else table.c.version_at < stmt.excluded.version_at
    )
    return stmt.on_conflict_do_update(index_elements=["id"], set_=updates, where=newer).returning(table.c.id)


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
    return stored_version_and(session, kind, object_id, sa.false())[0]


def stored_version_and(
    session: Session, kind: str, object_id: str, condition: sa.ColumnElement[bool]
) -> tuple[int | None, bool]:
    """The stored copy's version (None: no such object) and `condition`, in one statement."""
    row = session.execute(sa.select(_version_of(kind), condition), {"object_id": object_id}).one()
    return row[0], bool(row[1])


@functools.cache
def _version_of(kind: str) -> sa.ScalarSelect[Any]:
    """The stored version of the object `:object_id` of `kind`, built once: each webhook delivery
    reads it."""
    table = table_of(KINDS[kind].model)
    return sa.select(table.c.version_at).where(table.c.id == sa.bindparam("object_id")).scalar_subquery()
