"""The dashboard's rollup tables: how each mirror table adds to them, as SQL for both backends.

Migration 0010 creates the triggers from these definitions, and `billy rebuild-derived`
(`rebuild_rollups`) re-sums the tables from them, so the two can never disagree. A change
here needs a new migration that drops and re-creates the triggers (`drop_triggers`,
`sqlite_triggers` / `postgres_triggers`) and rebuilds the totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session


@dataclass(frozen=True)
class Feed:
    """How the rows of one mirror table add to one rollup table. Expressions are SQL over
    a row named `{r}` (`new`/`old` in a trigger, an alias in the initial sum), valid on both
    SQLite and PostgreSQL."""

    source: str
    target: str
    keys: dict[str, str]  # rollup key column → expression
    values: dict[str, str]  # rollup total column → the row's share
    counts_when: str  # the row adds to the totals only when this holds
    watched: tuple[str, ...]  # an UPDATE that changes none of these changes no total

    def key_sql(self, r: str) -> str:
        return ", ".join(e.format(r=r) for e in self.keys.values())

    def _adding(self, select_sql: str) -> str:
        """INSERT the rows of `select_sql` (keys, then totals) into the rollup, adding to the
        totals of a row already there."""
        sets = ", ".join(f"{c} = {self.target}.{c} + excluded.{c}" for c in self.values)
        return (
            f"INSERT INTO {self.target} ({', '.join([*self.keys, *self.values])}) {select_sql} "
            f"ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET {sets}"
        )

    def upsert(self, r: str, sign: str = "") -> str:
        """Add (sign "") or take back (sign "-") the share of row `r`."""
        shares = ", ".join(f"{sign}({e.format(r=r)})" for e in self.values.values())
        return self._adding(f"SELECT {self.key_sql(r)}, {shares} WHERE {self.counts_when.format(r=r)}")

    def initial_sum(self) -> str:
        sums = ", ".join(f"SUM({e.format(r='r')})" for e in self.values.values())
        return self._adding(
            f"SELECT {self.key_sql('r')}, {sums} FROM {self.source} AS r "  # noqa: S608 - our own names
            f"WHERE {self.counts_when.format(r='r')} GROUP BY {self.key_sql('r')}"
        )

    def changed(self, old: str, new: str, distinct: str) -> str:
        return " OR ".join(f"{old}.{c} {distinct} {new}.{c}" for c in self.watched)


DAY = "{r}.created / 86400"
FEEDS = (
    Feed(
        "stripe_charge",
        "rollup_revenue_day",
        {"currency": "{r}.currency", "day": DAY},
        {"gross": "{r}.amount", "refunded": "0"},
        "{r}.status = 'succeeded' AND {r}.paid AND NOT {r}.deleted",
        ("status", "paid", "deleted", "amount", "currency", "created"),
    ),
    Feed(
        "stripe_refund",
        "rollup_revenue_day",
        {"currency": "{r}.currency", "day": DAY},
        {"gross": "0", "refunded": "{r}.amount"},
        "COALESCE({r}.status, 'succeeded') NOT IN ('failed', 'canceled') AND NOT {r}.deleted",
        ("status", "deleted", "amount", "currency", "created"),
    ),
    Feed(
        "stripe_subscription",
        "rollup_mrr",
        {"currency": "{r}.currency", "status": "{r}.status"},
        {"subscriptions": "1", "mrr": "{r}.mrr"},
        "NOT {r}.deleted",
        ("status", "deleted", "currency", "mrr"),
    ),
    Feed(
        "stripe_invoice",
        "rollup_open_invoices",
        {"currency": "{r}.currency", "due_day": "COALESCE({r}.due_date / 86400, -1)"},
        {"invoices": "1", "amount_remaining": "{r}.amount_remaining"},
        "{r}.status = 'open' AND NOT {r}.deleted",
        ("status", "deleted", "currency", "due_date", "amount_remaining"),
    ),
)


def sqlite_triggers(feed: Feed) -> list[str]:
    name = f"{feed.source}_to_{feed.target}"
    return [
        f"CREATE TRIGGER {name}_ai AFTER INSERT ON {feed.source} BEGIN {feed.upsert('new')}; END",
        f"CREATE TRIGGER {name}_ad AFTER DELETE ON {feed.source} BEGIN {feed.upsert('old', '-')}; END",
        f"CREATE TRIGGER {name}_au AFTER UPDATE OF {', '.join(feed.watched)} ON {feed.source} "
        f"WHEN {feed.changed('old', 'new', 'IS NOT')} "
        f"BEGIN {feed.upsert('old', '-')}; {feed.upsert('new')}; END",
    ]


def postgres_triggers(feed: Feed) -> list[str]:
    name = f"{feed.source}_to_{feed.target}"
    return [
        f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN {feed.upsert("OLD", "-")}; END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN {feed.upsert("NEW")}; END IF;
            RETURN NULL;
        END $fn$""",
        f"CREATE TRIGGER {name}_insert_delete AFTER INSERT OR DELETE ON {feed.source} "
        f"FOR EACH ROW EXECUTE FUNCTION {name}()",
        f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(feed.watched)} ON {feed.source} "
        f"FOR EACH ROW WHEN ({feed.changed('OLD', 'NEW', 'IS DISTINCT FROM')}) EXECUTE FUNCTION {name}()",
    ]


def drop_triggers(dialect: str, feed: Feed) -> list[str]:
    name = f"{feed.source}_to_{feed.target}"
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}_{s}" for s in ("ai", "ad", "au")]
    return [f"DROP FUNCTION IF EXISTS {name}() CASCADE"]  # its triggers go with it


ROLLUP_TABLES = tuple(dict.fromkeys(feed.target for feed in FEEDS))


def rebuild_rollups(session: Session) -> dict[str, int]:
    """Empty every rollup table and sum it again from the mirror, in the caller's transaction:
    after a `TRUNCATE` (which fires no row triggers) or a restore, or to repair. Writers to the
    mirror wait meanwhile (PostgreSQL: SHARE locks; SQLite has one writer anyway), so no change
    can fall between the emptying and the sums. Returns the rows each table holds after."""
    if session.get_bind().dialect.name == "postgresql":
        sources = ", ".join(dict.fromkeys(feed.source for feed in FEEDS))
        session.execute(sa.text(f"LOCK TABLE {sources} IN SHARE MODE"))
    for table in ROLLUP_TABLES:
        session.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 - our own table names
    for feed in FEEDS:
        session.execute(sa.text(feed.initial_sum()))
    return {
        table: int(session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
        for table in ROLLUP_TABLES
    }
