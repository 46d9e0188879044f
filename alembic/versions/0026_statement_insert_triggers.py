"""statement insert triggers (PostgreSQL): a page of new rows adds to the rollups and prefixes once

The rollups (0010, 0021) and the customer prefixes (0022) were kept by row triggers: a backfill
page of 100 charges called three trigger functions per charge and upserted the day totals 100
times, and a page of 100 customers called the prefix function 100 times. On PostgreSQL those
calls were a fifth of a charge page's write and a quarter of a customer page's
(bench/backfill, issue 16).

New rows are now added once per statement, from the statement's transition table
(`REFERENCING NEW TABLE`): the day totals summed per day, each customer's two newest failures
merged with their row, the prefixes of every new customer in one INSERT, each taken in key
order. Updates and deletes, one row at a time, keep their row triggers. The totals are the
same either way, so nothing is summed again. SQLite keeps its row triggers (it has no
transition tables, and its triggers run inside the statement at no call cost).

Downgrade puts the row insert triggers back.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-08 00:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from services.rollups import FEEDS, REPEATS, drop_triggers, postgres_triggers
from services.search import PG_CUSTOMER_PREFIX_BY_STATEMENT_DOWN, PG_CUSTOMER_PREFIX_BY_STATEMENT_UP

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rollup_triggers_again() -> list[str]:
    """Every rollup trigger dropped and made again as services/rollups.py defines it now."""
    statements: list[str] = []
    for feed in FEEDS:
        statements += [*drop_triggers("postgresql", feed), *postgres_triggers(feed)]
    return [*statements, *REPEATS.drop_triggers("postgresql"), *REPEATS.postgres_triggers()]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in (*_rollup_triggers_again(), *PG_CUSTOMER_PREFIX_BY_STATEMENT_UP):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in PG_CUSTOMER_PREFIX_BY_STATEMENT_DOWN:
        op.execute(statement)
    for feed in FEEDS:
        name = f"{feed.source}_to_{feed.target}"
        for statement in drop_triggers("postgresql", feed):
            op.execute(statement)
        op.execute(ROW_FEED_FUNCTION.format(name=name, old=feed.upsert("OLD", "-"), new=feed.upsert("NEW")))
        op.execute(
            f"CREATE TRIGGER {name}_insert_delete AFTER INSERT OR DELETE ON {feed.source} "
            f"FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
        op.execute(
            f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(feed.watched)} ON {feed.source} "
            f"FOR EACH ROW WHEN ({feed.changed('OLD', 'NEW', 'IS DISTINCT FROM')}) EXECUTE FUNCTION {name}()"
        )
    name = REPEATS.name
    for statement in REPEATS.drop_triggers("postgresql"):
        op.execute(statement)
    again_old, again_new = REPEATS.read_again("OLD.customer_id"), REPEATS.read_again("NEW.customer_id")
    op.execute(
        f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            IF TG_OP = 'INSERT' THEN {REPEATS.add("NEW")};
            ELSE
                {"; ".join(again_old)};
                IF TG_OP = 'UPDATE' AND NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
                    {"; ".join(again_new)};
                END IF;
            END IF;
            RETURN NULL;
        END $fn$"""
    )
    op.execute(
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON stripe_charge FOR EACH ROW "
        f"WHEN ({REPEATS.counts('NEW')}) EXECUTE FUNCTION {name}()"
    )
    op.execute(
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON stripe_charge FOR EACH ROW "
        f"WHEN ({REPEATS.counts('OLD')}) EXECUTE FUNCTION {name}()"
    )
    op.execute(
        f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(REPEATS.watched)} ON stripe_charge "
        f"FOR EACH ROW WHEN ({REPEATS.changed('OLD', 'NEW', 'IS DISTINCT FROM')}) EXECUTE FUNCTION {name}()"
    )


# 0010's row function of a feed: the row's share taken back (update, delete), added (insert, update).
ROW_FEED_FUNCTION = """CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN {old}; END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN {new}; END IF;
    RETURN NULL;
END $fn$"""
