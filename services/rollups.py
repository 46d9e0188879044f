"""The dashboard's rollup tables: how each mirror table adds to them, as SQL for both backends.

Migration 0010 creates the triggers from these definitions (0021 adds failed payments), and
`billy rebuild-derived` (`rebuild_rollups`) re-sums the tables from them, so the two can never
disagree. A change here needs a new migration that drops and re-creates the triggers
(`drop_triggers`, `sqlite_triggers` / `postgres_triggers`) and rebuilds the totals.

Failed payments this week need one more thing than sums: which customers failed twice or more
in the week. `rollup_failed_customer` keeps, per customer, the times of their two newest failed
payments (`REPEATS`); a customer whose second newest failure falls inside the week is a
candidate, and the week's own rows of those few customers say the rest.
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

    def summed_from(self, rows: str) -> str:
        """Add the shares of every row of `rows` (a table, or a trigger's transition table),
        one upsert per rollup row, taken in key order."""
        sums = ", ".join(f"SUM({e.format(r='r')})" for e in self.values.values())
        return self._adding(
            f"SELECT {self.key_sql('r')}, {sums} FROM {rows} AS r "  # noqa: S608 - our own names
            f"WHERE {self.counts_when.format(r='r')} GROUP BY {self.key_sql('r')} ORDER BY {self.key_sql('r')}"
        )

    def initial_sum(self) -> str:
        return self.summed_from(self.source)

    def changed(self, old: str, new: str, distinct: str) -> str:
        return " OR ".join(f"{old}.{c} {distinct} {new}.{c}" for c in self.watched)


# Decline codes the dashboard calls a fraud block (with Radar's "blocked" outcome). The one
# definition: services.reports groups in Python from it, and FAILURE_REASON_SQL below in SQL.
FRAUD_CODES = frozenset({"highest_risk_level", "elevated_risk_level", "rule", "fraudulent", "merchant_blacklist"})
_FRAUD_LIST = ", ".join(f"'{code}'" for code in sorted(FRAUD_CODES))
# `services.reports.failure_reason` over a charge row `{r}`, as SQL on both stores.
FAILURE_REASON_SQL = (
    f"CASE WHEN COALESCE({{r}}.decline_reason, '') IN ({_FRAUD_LIST}) OR {{r}}.outcome_type = 'blocked' "
    "THEN 'fraud' WHEN {r}.decline_reason IN ('expired_card', 'insufficient_funds') THEN {r}.decline_reason "
    "ELSE 'other' END"
)
FAILED = "{r}.status = 'failed' AND NOT {r}.deleted"
HAS_CUSTOMER = "COALESCE({r}.customer_id, '') <> ''"

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
    Feed(
        "stripe_charge",
        "rollup_failed_day",
        {"currency": "{r}.currency", "day": DAY, "reason": FAILURE_REASON_SQL},
        {"failures": "1", "amount": "{r}.amount", "with_customer": f"CASE WHEN {HAS_CUSTOMER} THEN 1 ELSE 0 END"},
        FAILED,
        ("status", "deleted", "amount", "currency", "created", "decline_reason", "outcome_type", "customer_id"),
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


# PostgreSQL adds a statement's new rows once per statement (a transition table, migration
# 0026): a backfill page of 100 charges is a few upserts of day totals, not 100 trigger calls,
# and every statement takes the rollup rows it adds to in key order. Updates and deletes, one
# row at a time from webhooks and edits, keep their row triggers.
INSERTED = "inserted"  # the transition table's name in the statement triggers


def statement_trigger(name: str, source: str, body: str) -> list[str]:
    """A function running `body` (SQL over the transition table `inserted`) and the trigger
    calling it once after each INSERT statement on `source`, as `{name}_inserted`."""
    return [
        f"""CREATE FUNCTION {name}_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            {body};
            RETURN NULL;
        END $fn$""",
        f"CREATE TRIGGER {name}_inserted AFTER INSERT ON {source} REFERENCING NEW TABLE AS {INSERTED} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_inserted()",
    ]


def postgres_triggers(feed: Feed) -> list[str]:
    name = f"{feed.source}_to_{feed.target}"
    return [
        f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            {feed.upsert("OLD", "-")};
            IF TG_OP = 'UPDATE' THEN {feed.upsert("NEW")}; END IF;
            RETURN NULL;
        END $fn$""",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {feed.source} FOR EACH ROW EXECUTE FUNCTION {name}()",
        f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(feed.watched)} ON {feed.source} "
        f"FOR EACH ROW WHEN ({feed.changed('OLD', 'NEW', 'IS DISTINCT FROM')}) EXECUTE FUNCTION {name}()",
        *statement_trigger(name, feed.source, feed.summed_from(INSERTED)),
    ]


def drop_triggers(dialect: str, feed: Feed) -> list[str]:
    name = f"{feed.source}_to_{feed.target}"
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}_{s}" for s in ("ai", "ad", "au")]
    # Their triggers go with them (the statement function since 0026).
    return [f"DROP FUNCTION IF EXISTS {name}() CASCADE", f"DROP FUNCTION IF EXISTS {name}_inserted() CASCADE"]


@dataclass(frozen=True)
class Repeats:
    """Per customer, the `created` of their newest and second newest failed, undeleted charge
    (`second_newest` NULL with one), in `rollup_failed_customer`. A new failure moves the two along by
    arithmetic alone (a sync's inserts read no other row); a failure deleted, changed or moved
    to another customer makes that customer's row be read again from the mirror, through
    `ix_stripe_charge_customer_created`."""

    table: str = "rollup_failed_customer"
    watched: tuple[str, ...] = ("status", "deleted", "created", "customer_id")

    @property
    def name(self) -> str:
        """The triggers' (and PostgreSQL's function's) name."""
        return f"stripe_charge_to_{self.table}"

    def counts(self, r: str) -> str:
        return f"({FAILED.format(r=r)} AND {HAS_CUSTOMER.format(r=r)})"

    def add(self, r: str) -> str:
        t = self.table
        return (
            f"INSERT INTO {t} (customer_id, newest, second_newest) SELECT {r}.customer_id, {r}.created, NULL "
            f"WHERE {self.counts(r)} ON CONFLICT (customer_id) DO UPDATE SET "
            f"second_newest = CASE WHEN excluded.newest >= {t}.newest THEN {t}.newest "
            f"WHEN {t}.second_newest IS NULL OR excluded.newest > {t}.second_newest THEN excluded.newest "
            f"ELSE {t}.second_newest END, "
            f"newest = CASE WHEN excluded.newest > {t}.newest THEN excluded.newest ELSE {t}.newest END"
        )

    def added_from(self, rows: str) -> str:
        """The failures among `rows` (a statement's new rows), per customer their two newest,
        merged with the customer's row: its two newest of the four times."""
        t = self.table
        four = f"({t}.newest), ({t}.second_newest), (excluded.newest), (excluded.second_newest)"
        second = f"(SELECT v FROM (VALUES {four}) AS x (v) WHERE v IS NOT NULL ORDER BY v DESC LIMIT 1 OFFSET 1)"  # noqa: S608
        return (
            f"INSERT INTO {t} (customer_id, newest, second_newest) "  # noqa: S608 - our own names
            "SELECT r.customer_id, max(r.created), (array_agg(r.created ORDER BY r.created DESC))[2] "
            f"FROM {rows} AS r WHERE {self.counts('r')} GROUP BY r.customer_id ORDER BY r.customer_id "
            f"ON CONFLICT (customer_id) DO UPDATE SET second_newest = {second}, "
            f"newest = GREATEST({t}.newest, excluded.newest)"
        )

    def _summed(self, also: str = "") -> str:
        """The rows of every customer with a failure (and `also`), read from the mirror."""
        return (
            f"INSERT INTO {self.table} (customer_id, newest, second_newest) "  # noqa: S608 - our own names
            "SELECT c.customer_id, max(c.created), (SELECT d.created FROM stripe_charge AS d "
            f"WHERE {FAILED.format(r='d')} AND d.customer_id = c.customer_id "
            "ORDER BY d.created DESC LIMIT 1 OFFSET 1) "
            f"FROM stripe_charge AS c WHERE {self.counts('c')}{also} GROUP BY c.customer_id"
        )

    def read_again(self, customer: str) -> list[str]:
        """The customer's row again from the mirror (`customer` is SQL, NULL-safe)."""
        return [
            f"DELETE FROM {self.table} WHERE customer_id = {customer}",  # noqa: S608 - our own names
            self._summed(f" AND c.customer_id = {customer}"),
        ]

    def changed(self, old: str, new: str, distinct: str) -> str:
        moved = " OR ".join(f"{old}.{c} {distinct} {new}.{c}" for c in self.watched)
        return f"({self.counts(old)} OR {self.counts(new)}) AND ({moved})"

    def initial(self) -> str:
        return self._summed()

    def sqlite_triggers(self) -> list[str]:
        name = self.name
        again_old, again_new = self.read_again("old.customer_id"), self.read_again("new.customer_id")
        return [
            f"CREATE TRIGGER {name}_ai AFTER INSERT ON stripe_charge WHEN {self.counts('new')} "
            f"BEGIN {self.add('new')}; END",
            f"CREATE TRIGGER {name}_ad AFTER DELETE ON stripe_charge WHEN {self.counts('old')} "
            f"BEGIN {'; '.join(again_old)}; END",
            f"CREATE TRIGGER {name}_au AFTER UPDATE OF {', '.join(self.watched)} ON stripe_charge "
            f"WHEN {self.changed('old', 'new', 'IS NOT')} "
            f"BEGIN {'; '.join(again_old)}; {'; '.join(again_new)}; END",
        ]

    def postgres_triggers(self) -> list[str]:
        name = self.name
        again_old, again_new = self.read_again("OLD.customer_id"), self.read_again("NEW.customer_id")
        return [
            f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                {"; ".join(again_old)};
                IF TG_OP = 'UPDATE' AND NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
                    {"; ".join(again_new)};
                END IF;
                RETURN NULL;
            END $fn$""",
            *statement_trigger(name, "stripe_charge", self.added_from(INSERTED)),
            f"CREATE TRIGGER {name}_delete AFTER DELETE ON stripe_charge FOR EACH ROW "
            f"WHEN ({self.counts('OLD')}) EXECUTE FUNCTION {name}()",
            f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(self.watched)} ON stripe_charge "
            f"FOR EACH ROW WHEN ({self.changed('OLD', 'NEW', 'IS DISTINCT FROM')}) EXECUTE FUNCTION {name}()",
        ]

    def drop_triggers(self, dialect: str) -> list[str]:
        name = self.name
        if dialect == "sqlite":
            return [f"DROP TRIGGER IF EXISTS {name}_{s}" for s in ("ai", "ad", "au")]
        return [f"DROP FUNCTION IF EXISTS {name}() CASCADE", f"DROP FUNCTION IF EXISTS {name}_inserted() CASCADE"]


REPEATS = Repeats()
ROLLUP_TABLES = (*dict.fromkeys(feed.target for feed in FEEDS), REPEATS.table)


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
    session.execute(sa.text(REPEATS.initial()))
    return {
        table: int(session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
        for table in ROLLUP_TABLES
    }
