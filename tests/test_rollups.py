"""The dashboard's rollup tables (migration 0010) always equal sums over the mirror rows.

The dashboard reads MRR, revenue per day and open invoices from rollups kept by database
triggers. If a trigger missed a kind of write (a status change, a deletion, a currency
change, a row removed by hand, an upsert that changed nothing), the dashboard would drift
from the store for good. Each test here makes such writes through the same path the sync
uses (`mirror.write_objects`) and by plain SQL, then compares every rollup row with the same
total summed straight from the mirror tables, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlmodel import Session

from services import cli, mirror, reports
from services.cli import alembic_config, migrate
from services.db import get_engine, run_transaction, session_scope
from services.models import NO_DUE_DAY
from tests.conftest import Instance, Templates, _make_instance

DAY = 86_400
T0 = 1_790_000_000  # a fixed moment, a few days' worth of rows around it
CURRENCIES = ("usd", "eur")
CHARGE_STATUSES = ("succeeded", "failed", "pending")
REFUND_STATUSES = ("succeeded", "pending", "failed", "canceled", None)
SUB_STATUSES = ("active", "past_due", "trialing", "canceled", "unpaid")
INVOICE_STATUSES = ("open", "paid", "draft", "void", "uncollectible")


CUSTOMERS = (None, "cus_a", "cus_b", "cus_c")
OUTCOMES = (  # (Radar's outcome, failure_code): every reason the dashboard groups failures by
    ({"type": "issuer_declined", "reason": "expired_card"}, "expired_card"),
    ({"type": "issuer_declined", "reason": None}, "insufficient_funds"),
    ({"type": "blocked", "reason": "highest_risk_level"}, "card_declined"),
    ({"type": "issuer_declined", "reason": "fraudulent"}, "card_declined"),
    ({"type": "blocked", "reason": None}, None),
    ({"type": "issuer_declined", "reason": "lost_card"}, "card_declined"),
    (None, None),
)


def charge(rng: random.Random, oid: str) -> dict[str, Any]:
    status = rng.choice(CHARGE_STATUSES)
    outcome, failure_code = rng.choice(OUTCOMES)
    return {
        "id": oid,
        "object": "charge",
        "amount": rng.randint(50, 50_000),
        "currency": rng.choice(CURRENCIES),
        "status": status,
        "paid": status == "succeeded" and rng.random() < 0.95,
        "created": T0 + rng.randint(-5 * DAY, 5 * DAY),
        "customer": rng.choice(CUSTOMERS),
        "outcome": outcome,
        "failure_code": failure_code if status == "failed" else None,
    }


def refund(rng: random.Random, oid: str) -> dict[str, Any]:
    return {
        "id": oid,
        "object": "refund",
        "amount": rng.randint(50, 5_000),
        "currency": rng.choice(CURRENCIES),
        "status": rng.choice(REFUND_STATUSES),
        "created": T0 + rng.randint(-5 * DAY, 5 * DAY),
    }


def subscription(rng: random.Random, oid: str) -> dict[str, Any]:
    currency = rng.choice(CURRENCIES)
    interval = rng.choice(("month", "year"))
    return {
        "id": oid,
        "object": "subscription",
        "status": rng.choice(SUB_STATUSES),
        "currency": currency,
        "created": T0,
        "items": {
            "data": [
                {
                    "id": f"si_{oid}",
                    "quantity": rng.randint(1, 4),
                    "price": {
                        "id": "price_x",
                        "unit_amount": rng.choice((900, 4900, 12000)),
                        "currency": currency,
                        "recurring": {"interval": interval, "interval_count": 1},
                    },
                }
            ]
        },
    }


def invoice(rng: random.Random, oid: str) -> dict[str, Any]:
    total = rng.choice((900, 1900, 4900))
    status = rng.choice(INVOICE_STATUSES)
    return {
        "id": oid,
        "object": "invoice",
        "status": status,
        "currency": rng.choice(CURRENCIES),
        "total": total,
        "amount_due": total,
        "amount_remaining": rng.choice((0, total // 2, total)) if status == "open" else 0,
        "due_date": None if rng.random() < 0.3 else T0 + rng.randint(-5 * DAY, 5 * DAY),
        "created": T0,
    }


MAKERS = {"charge": charge, "refund": refund, "subscription": subscription, "invoice": invoice}
# Each field whose change alone must move a total (the mirror columns the triggers watch).
ONE_CHANGE = {
    "charge": ("status", "paid", "amount", "currency", "created", "customer", "outcome", "failure_code"),
    "refund": ("status", "amount", "currency", "created"),
    "subscription": ("status", "currency", "items"),
    "invoice": ("status", "currency", "amount_remaining", "due_date"),
}
TABLES = {
    "charge": "stripe_charge",
    "refund": "stripe_refund",
    "subscription": "stripe_subscription",
    "invoice": "stripe_invoice",
}


def summed_from_mirror(session: Session) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """Each rollup's rows as the dashboard's definitions sum them from the mirror, in Python
    over plain SELECTs (not the triggers' SQL), zero rows left out."""

    def rows(sql: str) -> list[Any]:
        return list(session.execute(sa.text(sql)))

    revenue: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for cur, created, amount, status, paid, deleted in rows(
        "SELECT currency, created, amount, status, paid, deleted FROM stripe_charge"
    ):
        if status == "succeeded" and paid and not deleted:
            revenue[(cur, created // DAY)][0] += amount
    for cur, created, amount, status, deleted in rows(
        "SELECT currency, created, amount, status, deleted FROM stripe_refund"
    ):
        if (status or "succeeded") not in ("failed", "canceled") and not deleted:
            revenue[(cur, created // DAY)][1] += amount
    mrr: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for cur, status, amount, deleted in rows("SELECT currency, status, mrr, deleted FROM stripe_subscription"):
        if not deleted:
            mrr[(cur, status)][0] += 1
            mrr[(cur, status)][1] += amount
    invoices: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for cur, due, remaining, status, deleted in rows(
        "SELECT currency, due_date, amount_remaining, status, deleted FROM stripe_invoice"
    ):
        if status == "open" and not deleted:
            key = (cur, NO_DUE_DAY if due is None else due // DAY)
            invoices[key][0] += 1
            invoices[key][1] += remaining

    failed: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    times: dict[str, list[int]] = defaultdict(list)  # customer → when each failure was made
    for cur, created, amount, status, deleted, customer, code, outcome in rows(
        "SELECT currency, created, amount, status, deleted, customer_id, decline_reason, outcome_type "
        "FROM stripe_charge"
    ):
        if status == "failed" and not deleted:
            totals = failed[(cur, created // DAY, reports.failure_reason(code, outcome).value)]
            totals[0] += 1
            totals[1] += amount
            totals[2] += 1 if customer else 0
            if customer:
                times[customer].append(created)
    newest_two = {(customer,): (sorted(t)[-1], sorted(t)[-2] if len(t) > 1 else None) for customer, t in times.items()}

    def nonzero(d: dict[tuple[Any, ...], list[int]]) -> dict[tuple[Any, ...], tuple[int, ...]]:
        return {k: tuple(v) for k, v in d.items() if any(v)}

    return {
        "rollup_revenue_day": nonzero(revenue),
        "rollup_mrr": nonzero(mrr),
        "rollup_open_invoices": nonzero(invoices),
        "rollup_failed_day": nonzero(failed),
        "rollup_failed_customer": newest_two,  # type: ignore[dict-item]
    }


def rollups(session: Session) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    queries = {  # table → (SELECT with its keys first, how many keys)
        "rollup_revenue_day": ("SELECT currency, day, gross, refunded FROM rollup_revenue_day", 2),
        "rollup_mrr": ("SELECT currency, status, subscriptions, mrr FROM rollup_mrr", 2),
        "rollup_open_invoices": (
            "SELECT currency, due_day, invoices, amount_remaining FROM rollup_open_invoices",
            2,
        ),
        "rollup_failed_day": (
            "SELECT currency, day, reason, failures, amount, with_customer FROM rollup_failed_day",
            3,
        ),
    }
    out: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    for table, (sql, keys) in queries.items():
        out[table] = {
            tuple(row[:keys]): tuple(int(v) for v in row[keys:])
            for row in session.execute(sa.text(sql))
            if any(int(v) for v in row[keys:])
        }
    out["rollup_failed_customer"] = {
        (customer,): (int(newest), None if second is None else int(second))
        for customer, newest, second in session.execute(
            sa.text("SELECT customer_id, newest, second_newest FROM rollup_failed_customer")
        )
    }
    return out


def test_rollups_follow_every_kind_of_mirror_write(any_store: Any) -> None:
    rng = random.Random(20261126)
    known: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in MAKERS}
    version = T0
    for step in range(900):
        kind = rng.choice(tuple(MAKERS))
        version += 1
        action = rng.random()
        with session_scope() as session:
            if action < 0.45 or not known[kind]:  # a new object
                oid = f"{kind[:3]}_{step}"
                known[kind][oid] = MAKERS[kind](rng, oid)
                mirror.write_objects(session, kind, [known[kind][oid]], version)
            elif action < 0.60:  # Stripe changed one thing about it
                oid = rng.choice(sorted(known[kind]))
                field = rng.choice(ONE_CHANGE[kind])
                known[kind][oid] = {**known[kind][oid], field: MAKERS[kind](rng, oid)[field]}
                mirror.write_objects(session, kind, [known[kind][oid]], version)
            elif action < 0.75:  # Stripe changed everything about it
                oid = rng.choice(sorted(known[kind]))
                known[kind][oid] = MAKERS[kind](rng, oid)
                mirror.write_objects(session, kind, [known[kind][oid]], version)
            elif action < 0.82:  # the same copy again: the upsert fires, nothing changes
                oid = rng.choice(sorted(known[kind]))
                mirror.write_objects(session, kind, [known[kind][oid]], version, replace_equal=True)
            elif action < 0.88:  # an older copy: refused by the version guard
                oid = rng.choice(sorted(known[kind]))
                mirror.write_objects(session, kind, [MAKERS[kind](rng, oid)], 0)
            elif action < 0.95:  # deleted in Stripe
                oid = rng.choice(sorted(known[kind]))
                mirror.write_objects(session, kind, [known[kind][oid]], version, deleted=True)
            else:  # removed by hand
                oid = rng.choice(sorted(known[kind]))
                session.execute(sa.text(f"DELETE FROM {TABLES[kind]} WHERE id = :id"), {"id": oid})  # noqa: S608
                del known[kind][oid]
        if step % 100 == 99:
            with session_scope() as session:
                assert rollups(session) == summed_from_mirror(session), f"after step {step}"
    with session_scope() as session:
        final = rollups(session)
        assert final == summed_from_mirror(session)
        # The walk did exercise every rollup (a vacuous comparison would prove nothing).
        assert all(len(rows) >= 3 for rows in final.values()), final


def test_a_page_of_new_rows_in_one_statement_adds_what_its_rows_would_one_by_one(any_store: Any) -> None:
    """A backfill page is one upsert of up to 100 rows, many of them on the same day and, for
    failures, of the same customer. On PostgreSQL they are added once per statement (migration
    0026): per day a sum, per customer the two newest failures of the page merged with the two
    already kept. The totals must be those of the rows, whatever the page holds."""
    rng = random.Random(20261208)
    version = T0
    for round_ in range(6):
        version += 1
        with session_scope() as session:
            for kind, size in (("charge", 80), ("refund", 30), ("subscription", 10), ("invoice", 10)):
                page = [MAKERS[kind](rng, f"{kind[:3]}_p{round_}_{n}") for n in range(size)]
                mirror.write_objects(session, kind, page, version)
        with session_scope() as session:
            assert rollups(session) == summed_from_mirror(session), f"after page {round_}"
    with session_scope() as session:
        repeats = rollups(session)["rollup_failed_customer"]
    # Every customer failed many times in each page: the newest two came from one statement.
    assert len(repeats) == len(CUSTOMERS) - 1 and all(second is not None for _, second in repeats.values())


def test_a_rolled_back_write_leaves_the_rollups_as_they_were(any_store: Any) -> None:
    rng = random.Random(7)
    obj = {**charge(rng, "ch_kept"), "status": "succeeded", "paid": True}
    with session_scope() as session:
        mirror.write_objects(session, "charge", [obj], T0)
    with session_scope() as session:
        before = rollups(session)
    try:
        with session_scope() as session:
            mirror.write_objects(session, "charge", [{**obj, "amount": obj["amount"] + 1000}], T0 + 1)
            mirror.write_objects(
                session, "charge", [{**charge(rng, "ch_new"), "status": "succeeded", "paid": True}], T0
            )
            raise RuntimeError("the action failed after writing")
    except RuntimeError:
        pass
    with session_scope() as session:
        assert rollups(session) == before == summed_from_mirror(session)


def test_upgrading_sums_the_rows_already_in_the_store(any_store: Any) -> None:
    """An instance that synced before 0010 gets rollups equal to its existing rows."""
    cfg = alembic_config(any_store.database_url)
    command.downgrade(cfg, "0009")
    rng = random.Random(11)
    engine = get_engine()
    with engine.begin() as conn:
        assert not sa.inspect(conn).has_table("rollup_mrr")
    with session_scope() as session:
        for kind, maker in MAKERS.items():
            mirror.write_objects(session, kind, [maker(rng, f"{kind[:3]}_{i}") for i in range(40)], T0)
    migrate(any_store.database_url)
    with session_scope() as session:
        sums = summed_from_mirror(session)
        assert all(sums.values())
        assert rollups(session) == sums
    # …and the triggers work after the upgrade too.
    with session_scope() as session:
        mirror.write_objects(session, "invoice", [{**invoice(rng, "inv_0"), "status": "void"}], T0 + 5)
        mirror.write_objects(session, "subscription", [subscription(rng, "sub_late")], T0 + 5)
    with session_scope() as session:
        assert rollups(session) == summed_from_mirror(session)


def test_rebuild_derived_sums_the_rollups_again_after_they_were_lost(any_store: Instance, capsys: Any) -> None:
    """A TRUNCATE (no row triggers fire) or a bad restore leaves the totals wrong for good;
    `billy rebuild-derived` sums them again from the mirror (and re-fills the customer prefixes,
    and SQLite's search index, which a VACUUM can leave pointing at the wrong rows), and the
    triggers go on after."""
    rng = random.Random(5)
    with session_scope() as session:
        for kind, maker in MAKERS.items():
            mirror.write_objects(session, kind, [maker(rng, f"{kind[:3]}_{i}") for i in range(30)], T0)
        people = [{"id": f"cus_{i}", "object": "customer", "name": f"Pat Person{i}", "created": T0} for i in range(4)]
        mirror.write_objects(session, "customer", people, T0)
    with session_scope() as session:
        expected = summed_from_mirror(session)
        session.execute(sa.text("DELETE FROM rollup_mrr"))
        session.execute(sa.text("UPDATE rollup_revenue_day SET gross = gross + 12345"))
        session.execute(sa.text("UPDATE rollup_failed_day SET failures = failures + 3"))
        session.execute(sa.text("DELETE FROM rollup_failed_customer WHERE customer_id = 'cus_a'"))
        session.execute(sa.text("INSERT INTO rollup_open_invoices VALUES ('gbp', 1, 7, 700)"))
        session.execute(sa.text("DELETE FROM stripe_customer_prefix"))  # as a TRUNCATE would leave it
        if any_store.kind == "sqlite":
            session.execute(sa.text("DELETE FROM stripe_customer_search"))
    with session_scope() as session:
        assert rollups(session) != expected

    assert cli.main(["rebuild-derived"]) == 0

    printed = capsys.readouterr().out
    assert "rollup_mrr:" in printed and "rollup_revenue_day:" in printed and "rollup_failed_customer:" in printed
    with session_scope() as session:
        assert rollups(session) == expected
        # "pat person0" and "person0" for each of the four
        assert session.execute(sa.text("SELECT count(*) FROM stripe_customer_prefix")).scalar_one() == 8
        if any_store.kind == "sqlite":
            assert session.execute(sa.text("SELECT count(*) FROM stripe_customer_search")).scalar_one() == 4
    with session_scope() as session:
        mirror.write_objects(session, "subscription", [subscription(rng, "sub_after")], T0 + 1)
    with session_scope() as session:
        assert rollups(session) == summed_from_mirror(session)


@pytest.fixture
def pg_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, templates: Templates) -> Iterator[Instance]:
    """PostgreSQL only: SQLite lets one writer in at a time, so it cannot deadlock."""
    yield from _make_instance("postgresql", tmp_path, monkeypatch, templates)


def test_two_pages_locking_the_same_totals_in_opposite_orders_both_land(
    pg_store: Instance, caplog: pytest.LogCaptureFixture
) -> None:
    """A charges page and a refunds page of the same day, in two currencies, reach the two
    revenue rows in opposite orders: PostgreSQL ends one of them as a deadlock, and
    `run_transaction` runs that one again instead of failing the page, and says so."""
    caplog.set_level("WARNING", logger="services.db")
    meet = threading.Barrier(2, timeout=20)

    def obj(kind: str, oid: str, currency: str) -> dict[str, Any]:
        base = {"id": oid, "object": kind, "amount": 1000, "currency": currency, "created": T0}
        return {**base, "status": "succeeded", "paid": True} if kind == "charge" else {**base, "charge": "ch_x"}

    def page(kind: str, first: str, second: str, runs: list[int]) -> Any:
        def work(session: Session) -> None:
            runs.append(1)
            mirror.write_objects(session, kind, [obj(kind, f"{kind}_{first}", first)], T0)
            if len(runs) == 1:
                meet.wait()  # both hold their first total; each now wants the other's
            mirror.write_objects(session, kind, [obj(kind, f"{kind}_{second}", second)], T0)

        return work

    charge_runs: list[int] = []
    refund_runs: list[int] = []
    errors: list[BaseException] = []

    def run(work: Any) -> None:
        try:
            run_transaction(work)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(page("charge", "usd", "eur", charge_runs),)),
        threading.Thread(target=run, args=(page("refund", "eur", "usd", refund_runs),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(charge_runs) + len(refund_runs) == 3  # one of them met the deadlock and ran again
    said = [r.getMessage() for r in caplog.records if r.name == "services.db"]
    assert said == ["Transaction rolled back (DeadlockDetected), running it again (attempt 2)"]
    with session_scope() as session:
        totals = rollups(session)["rollup_revenue_day"]
        assert totals == {("usd", T0 // DAY): (1000, 1000), ("eur", T0 // DAY): (1000, 1000)}
        assert rollups(session) == summed_from_mirror(session)
