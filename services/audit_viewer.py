"""The Owner's audit viewer: filters, paging, one entry, CSV export and the chain's verdict.

Only the Owner reads the log (`Permission.VIEW_AUDIT`). Reading is not itself an action the
log records, but a refused attempt to read it is, and so are exports and verifications (each
hands the log to someone or judges it). Every argument may come from a forged event: the
filters are checked here before they reach a query. The log itself, its chain and its
verification live in `services.audit`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from services.audit import CONTENT_FIELDS, VerifyResult, audited, chain_hash, refusal_recorded, verify
from services.db import get_engine, session_scope
from services.errors import NotFound, ValidationFailed
from services.exports import safe_cell  # the one formula guard for every CSV
from services.models import AuditEntry, table_of, utcnow
from services.money import format_money
from services.permissions import Actor, Source, authorize

log = logging.getLogger(__name__)
_table = table_of(AuditEntry)

SOURCES = tuple(str(s) for s in Source)
OUTCOMES = ("ok", "denied", "failed")
PAGE_LIMIT_MAX = 200
IDS_MAX = 100  # rows asked for by number: an alert names far fewer
EXPORT_LIMIT = 50_000  # rows per export: more would not travel to a browser in one piece
EXPORT_COLUMNS = (
    "id",
    "at_utc",
    "actor_id",
    "actor_email",
    "actor_role",
    "source",
    "client_address",
    "user_agent",
    "action",
    "target_ids",
    "amount_minor_units",
    "currency",
    "outcome",
    "error",
    "details",
    "prev_hash",
    "hash",
)
_ACTION_TEXT = re.compile(r"^[a-z0-9_.]*\*?$")


@dataclass(frozen=True)
class AuditFilters:
    """What the viewer narrows the log to; every field is optional ("" or None: any).

    - person: an actor's whole email (that person only) or its beginning ("alice", "alice@",
      or anything ending in "*"), matched without regard to case.
    - action: an action ("team.invite", exactly), a family ("team" or "team.": every
      "team.…" action) or a beginning ending in "*" ("team.inv*").
    - source: dashboard | api | agent | system; outcome: ok | denied | failed.
    - date_from (included) and date_to (excluded): timezone-aware, compared in UTC.
    - ids: these rows only (at most 100): the rows a spend alert points to.
    """

    person: str = ""
    action: str = ""
    source: str = ""
    outcome: str = ""
    date_from: datetime | None = None
    date_to: datetime | None = None
    ids: tuple[int, ...] = ()

    def as_details(self) -> dict[str, str]:
        """The filters as an audit row's details (only those set), times in ISO UTC."""
        out = {k: str(getattr(self, k)).strip()[:254] for k in ("person", "action", "source", "outcome")}
        for key in ("date_from", "date_to"):
            value = getattr(self, key)
            out[key] = value.astimezone(UTC).isoformat() if isinstance(value, datetime) and value.tzinfo else ""
        out["ids"] = ",".join(str(i) for i in self.ids[:IDS_MAX]) if isinstance(self.ids, tuple) else ""
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class AuditRecord:
    """One row of the log, as read: every column, the hashes included."""

    id: int
    at: datetime
    actor_id: int | None
    actor_email: str
    actor_role: str
    source: str
    client_address: str
    user_agent: str
    action: str
    target_ids: list[str]
    amount: int | None
    currency: str | None
    outcome: str
    error: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str
    # The role as people read it now (a custom role by its name; its key if since deleted).
    actor_role_label: str = ""

    @property
    def amount_label(self) -> str:
        if self.amount is None:
            return ""
        return format_money(self.amount, self.currency) if self.currency else str(self.amount)

    @property
    def sealed(self) -> bool:
        """Does the row's own hash still match its content? (Whether it links to the rows
        around it is for `verify`, which walks the whole chain.)"""
        try:
            return chain_hash(self.prev_hash or "", self._content()) == self.hash
        except (TypeError, ValueError):
            return False

    def _content(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CONTENT_FIELDS}


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditRecord]
    # Pass as `cursor` to read the next (older) page; None when nothing older matches.
    next_cursor: int | None


@dataclass(frozen=True)
class AuditExport:
    text: str  # CSV, with a header row
    rows: int
    truncated: bool  # more rows matched than EXPORT_LIMIT: the newest ones are in `text`
    filename: str

    def describe(self) -> str:
        if self.truncated:
            return (
                f"Exported the newest {self.rows:,} matching rows: an export holds at most {EXPORT_LIMIT:,}. "
                "Narrow the dates to export the older ones."
            )
        return f"Exported {self.rows:,} row{'' if self.rows == 1 else 's'}."


def _text(value: object, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed(f"The {name} filter must be text.")
    text = value.strip()
    if len(text) > limit:
        raise ValidationFailed(f"The {name} filter is too long (at most {limit} characters).")
    return text


def _when(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationFailed(f"The '{name}' date must be a date and time.")
    if value.tzinfo is None:
        raise ValidationFailed(f"The '{name}' date must say its time zone (the log keeps times in UTC).")
    return value.astimezone(UTC)


def _utc_label(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _conditions(filters: AuditFilters) -> list[sa.ColumnElement[bool]]:
    """The filters as SQL conditions, after checking every one of them."""
    if not isinstance(filters, AuditFilters):
        raise ValidationFailed("Those filters are not ones the audit log understands.")
    c = _table.c
    where: list[sa.ColumnElement[bool]] = []

    person = _text(filters.person, "person", 254).lower()
    if person:
        whole_email = re.fullmatch(r"[^@\s*]+@[^@\s*]+\.[^@\s*.]{2,}", person) is not None
        if whole_email:
            where.append(c.actor_email == person)
        else:
            where.append(sa.func.lower(c.actor_email).startswith(person.rstrip("*"), autoescape=True))

    action = _text(filters.action, "action", 60).lower()
    if action:
        if not _ACTION_TEXT.match(action):
            raise ValidationFailed(
                "An action looks like team.invite: lower-case letters, digits, '_' and '.', "
                "or a beginning ending in '*' (team.inv*)."
            )
        if action.endswith(("*", ".")):
            where.append(c.action.startswith(action.rstrip("*"), autoescape=True))
        elif "." not in action:  # a family: "team" is every team.… action
            where.append(sa.or_(c.action == action, c.action.startswith(action + ".", autoescape=True)))
        else:
            where.append(c.action == action)

    source = _text(filters.source, "source", 20).lower()
    if source and source != "any":
        if source not in SOURCES:
            raise ValidationFailed(f"The source is one of {', '.join(SOURCES)}.")
        where.append(c.source == source)

    outcome = _text(filters.outcome, "outcome", 20).lower()
    if outcome and outcome != "any":
        if outcome not in OUTCOMES:
            raise ValidationFailed(f"The outcome is one of {', '.join(OUTCOMES)}.")
        where.append(c.outcome == outcome)

    since, before = _when(filters.date_from, "from"), _when(filters.date_to, "to")
    if since is not None and before is not None and since > before:
        raise ValidationFailed(
            f"The date range ends before it starts (from {_utc_label(since)} to {_utc_label(before)}): "
            "swap the dates or clear one."
        )
    if since is not None:
        where.append(c.at >= since)
    if before is not None:
        where.append(c.at < before)

    if filters.ids:
        ids = filters.ids
        if not isinstance(ids, tuple) or len(ids) > IDS_MAX or not all(type(i) is int and i > 0 for i in ids):
            raise ValidationFailed(f"Ask for at most {IDS_MAX} audit rows by their numbers.")
        where.append(c.id.in_(ids))
    return where


def _record_from(row: sa.RowMapping) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        at=row["at"],
        actor_id=row["actor_id"],
        actor_email=row["actor_email"] or "",
        actor_role=row["actor_role"] or "",
        source=row["source"],
        client_address=row["client_address"] or "",
        user_agent=row["user_agent"] or "",
        action=row["action"],
        target_ids=list(row["target_ids"] or []),
        amount=row["amount"],
        currency=row["currency"],
        outcome=row["outcome"],
        error=row["error"],
        details=dict(row["details"] or {}),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def search(actor: Actor, filters: AuditFilters | None = None, cursor: int | None = None, limit: int = 50) -> AuditPage:
    """One page of the rows that match, newest first. `cursor` is the `next_cursor` of the
    page before (rows with a smaller id come next), so a page never shifts as rows are added."""
    with refusal_recorded(actor, "audit.view"):
        authorize(actor, "audit.view")
    where = _conditions(filters or AuditFilters())
    if cursor is not None:
        if isinstance(cursor, bool) or not isinstance(cursor, int) or cursor < 1:
            raise ValidationFailed("That page of the audit log does not exist; start from the newest rows.")
        where.append(_table.c.id < cursor)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValidationFailed("The page size must be a number.")
    limit = max(1, min(limit, PAGE_LIMIT_MAX))
    stmt = sa.select(_table).where(*where).order_by(_table.c.id.desc()).limit(limit + 1)
    with get_engine().connect() as conn:
        rows = _labelled([_record_from(r) for r in conn.execute(stmt).mappings()])
    more = len(rows) > limit
    entries = rows[:limit]
    return AuditPage(entries, entries[-1].id if more else None)


def get_entry(actor: Actor, entry_id: int) -> AuditRecord:
    """One row in full, hashes included."""
    target = str(entry_id)[:20]
    with refusal_recorded(actor, "audit.view", target):
        authorize(actor, "audit.view")
    if isinstance(entry_id, bool) or not isinstance(entry_id, int) or entry_id < 1:
        raise NotFound("That audit row does not exist.")
    with get_engine().connect() as conn:
        row = conn.execute(sa.select(_table).where(_table.c.id == entry_id)).mappings().first()
    if row is None:
        raise NotFound(f"Audit row {entry_id} does not exist.")
    return _labelled([_record_from(row)])[0]


def _labelled(records: list[AuditRecord]) -> list[AuditRecord]:
    from services import roles  # roles records its changes here: import late, no cycle

    with session_scope() as session:
        labels = roles.labels(session)
    return [replace(r, actor_role_label=labels.get(r.actor_role, r.actor_role)) for r in records]


def known_actions(actor: Actor) -> list[str]:
    """Every action the log holds, for the viewer's suggestions."""
    with refusal_recorded(actor, "audit.view"):
        authorize(actor, "audit.view")
    stmt = sa.select(_table.c.action).distinct().order_by(_table.c.action).limit(500)
    with get_engine().connect() as conn:
        return [a for (a,) in conn.execute(stmt)]


def _csv_row(r: AuditRecord) -> list[object]:
    values: list[object] = [
        r.id,
        r.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "" if r.actor_id is None else r.actor_id,
        r.actor_email,
        r.actor_role,
        r.source,
        r.client_address,
        r.user_agent,
        r.action,
        " ".join(r.target_ids),
        "" if r.amount is None else r.amount,
        r.currency or "",
        r.outcome,
        r.error or "",
        json.dumps(r.details, sort_keys=True, ensure_ascii=False) if r.details else "",
        r.prev_hash,
        r.hash,
    ]
    return [safe_cell(v) for v in values]


def export(actor: Actor, filters: AuditFilters | None = None) -> AuditExport:
    """The matching rows as CSV, newest first, at most EXPORT_LIMIT of them. Audited: the
    row says which filters were used and how many rows left."""
    now = utcnow()
    filters = filters or AuditFilters()
    with audited(actor, "audit.export") as draft:
        authorize(actor, "audit.export")
        if isinstance(filters, AuditFilters):
            draft.details["filters"] = filters.as_details()
        where = _conditions(filters)
        stmt = sa.select(_table).where(*where).order_by(_table.c.id.desc()).limit(EXPORT_LIMIT + 1)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        count, truncated = 0, False
        with get_engine().connect() as conn:
            for row in conn.execution_options(yield_per=1000).execute(stmt).mappings():
                if count == EXPORT_LIMIT:
                    truncated = True
                    break
                writer.writerow(_csv_row(_record_from(row)))
                count += 1
        draft.details.update(rows=count, truncated=truncated)
    filename = f"billy-audit-log-{now.astimezone(UTC):%Y%m%d-%H%M%S}.csv"
    return AuditExport(out.getvalue(), count, truncated, filename)


def export_csv(actor: Actor, filters: AuditFilters | None = None) -> str:
    """`export`'s CSV text alone."""
    return export(actor, filters).text


def verify_for(actor: Actor) -> VerifyResult:
    """`verify`, for a person (the Owner): authorized, and audited with its result."""
    with audited(actor, "audit.verify") as draft:
        authorize(actor, "audit.verify")
        result = verify()
        draft.details.update(intact=result.ok, rows_checked=result.rows_checked)
        if not result.ok:
            draft.details.update(first_bad_id=result.first_bad_id, problem=result.problem[:500])
    return result
