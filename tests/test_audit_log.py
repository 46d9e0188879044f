"""The audit log is append-only in the database and hash-chained, on SQLite and PostgreSQL.

Tampering is done the way an intruder with database access would: raw SQL, with the
triggers dropped first where they are in the way. `verify` must then name what happened.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from services import audit, db
from services.cli import main
from services.config import PROJECT_ROOT
from services.models import AuditEntry
from services.permissions import Actor, Source
from services.secrets import get_secret_store
from tests.conftest import Instance

ACTOR = Actor(1, "owner@example.com", "owner", Source.DASHBOARD, "127.0.0.1", "pytest")
TABLE = AuditEntry.__table__


@pytest.fixture(autouse=True)
def _short_head_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify waits up to a second for a head behind the table (a writer finishing its append);
    here nothing is writing, so the forged and failed-head cases need not wait that long."""
    monkeypatch.setattr(audit, "_HEAD_WAIT_ATTEMPTS", 2)


def _append(count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        draft = audit.AuditDraft(targets=[f"ch_{i}"], amount=100 * i, currency="usd", details={"n": i})
        audit.record(ACTOR, "charges.refund", "ok", draft)


def _sql(statement: str, **params: object) -> None:
    with db.get_engine().begin() as conn:
        conn.execute(sa.text(statement), params)


def _rows() -> list[sa.RowMapping]:
    with db.get_engine().connect() as conn:
        return list(conn.execute(sa.select(TABLE).order_by(TABLE.c.id)).mappings())


def _drop_triggers(kind: str) -> None:
    if kind == "sqlite":
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_replace"):
            _sql(f"DROP TRIGGER {name}")
    else:
        for name in ("audit_log_no_update_delete", "audit_log_no_truncate"):
            _sql(f"DROP TRIGGER {name} ON audit_log")


def _forge(row_id: int, prev_hash: str, row_hash: str | None = None, **content: object) -> None:
    """Insert a row behind Billy's back (no trigger refuses an INSERT)."""
    row = {
        "id": row_id,
        "at": datetime.now(UTC),
        "actor_id": 1,
        "actor_email": "owner@example.com",
        "actor_role": "owner",
        "source": "dashboard",
        "client_address": "127.0.0.1",
        "user_agent": "pytest",
        "action": "charges.refund",
        "target_ids": ["ch_forged"],
        "amount": 999_00,
        "currency": "usd",
        "outcome": "ok",
        "error": None,
        "details": {},
        "prev_hash": prev_hash,
        **content,
    }
    row["hash"] = row_hash or audit.chain_hash(prev_hash, row)
    with db.get_engine().begin() as conn:
        conn.execute(sa.insert(TABLE), row)


def _head() -> str | None:
    return get_secret_store().get(audit.HEAD_SECRET)


# --- append-only in the database ---------------------------------------------------------------


def test_the_database_refuses_update_and_delete(any_store: Instance) -> None:
    _append(3)
    refused = ["UPDATE audit_log SET amount = 1 WHERE id = 2", "DELETE FROM audit_log WHERE id = 2"]
    refused += ["DELETE FROM audit_log", "UPDATE audit_log SET outcome = 'ok'"]
    if any_store.kind == "postgresql":
        refused += ["TRUNCATE audit_log", "INSERT INTO audit_log SELECT * FROM audit_log WHERE id = 2 "
                    "ON CONFLICT (id) DO UPDATE SET amount = 1"]  # fmt: skip
    else:
        refused += ["INSERT OR REPLACE INTO audit_log SELECT * FROM audit_log WHERE id = 2"]
    for statement in refused:
        with pytest.raises(sa.exc.DBAPIError, match="audit_log is append-only"):
            _sql(statement)
    assert [r["amount"] for r in _rows()] == [0, 100, 200]
    assert audit.verify().ok


def test_appends_form_one_chain_whose_head_is_kept_outside_the_table(any_store: Instance) -> None:
    empty = audit.verify()
    assert (empty.ok, empty.rows_checked, empty.first_bad_id) == (True, 0, None)
    assert _head() is None

    _append(5)
    rows = _rows()
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == audit.GENESIS
    for before, row in itertools.pairwise(rows):
        assert row["prev_hash"] == before["hash"]
    for row in rows:
        assert row["hash"] == audit.chain_hash(row["prev_hash"], row) and len(row["hash"]) == 64
    assert rows[-1]["at"] >= rows[0]["at"]
    assert _head() == f"5:{rows[-1]['hash']}"
    result = audit.verify()
    assert (result.ok, result.rows_checked, result.problem) == (True, 5, "")
    assert "ends at row 5" in result.describe()


def test_record_keeps_its_shape_and_what_it_stores_is_what_it_hashed(any_store: Instance) -> None:
    draft = audit.AuditDraft(targets=["cus_1", "", "ch_2"], amount=1250, currency="eur")
    draft.details = {"pair": (1, 2), 7: "seven", "name": "Zoë ✓"}  # a tuple and an int key change in JSON
    audit.record(ACTOR, "charges.refund", "failed", draft, "x" * 2000)
    row = _rows()[0]
    assert (row["actor_email"], row["source"], row["outcome"], row["amount"]) == (
        ACTOR.email,
        "dashboard",
        "failed",
        1250,
    )
    assert row["target_ids"] == ["cus_1", "ch_2"] and len(row["error"]) == 1000
    assert row["details"] == {"pair": [1, 2], "7": "seven", "name": "Zoë ✓"}
    assert audit.verify().ok


def test_canonical_form_is_stable_json() -> None:
    row = {name: None for name in audit.CONTENT_FIELDS}
    row |= {"id": 3, "at": datetime(2026, 1, 2, 4, 5, 6, tzinfo=UTC) + timedelta(hours=0), "details": {"b": 1, "a": 2}}
    text = audit.canonical(row).decode()
    assert text.startswith('{"action":null,"actor_email":null')
    assert '"at":"2026-01-02T04:05:06.000000Z"' in text and '"details":{"a":2,"b":1}' in text and " " not in text
    with pytest.raises(ValueError):
        audit.canonical(row | {"at": datetime(2026, 1, 2)})


# --- tampering is found -----------------------------------------------------------------------


def test_an_altered_row_is_named(any_store: Instance) -> None:
    _append(5)
    _drop_triggers(any_store.kind)
    _sql("UPDATE audit_log SET amount = 1 WHERE id = 3")
    result = audit.verify()
    assert (result.ok, result.first_bad_id, result.problem) == (False, 3, "row 3 was altered")
    assert result.rows_checked == 3


def test_an_altered_row_whose_hash_was_recomputed_is_named(any_store: Instance) -> None:
    _append(5)
    _drop_triggers(any_store.kind)
    row = dict(_rows()[2])
    row["amount"] = 1
    _sql("UPDATE audit_log SET amount = 1, hash = :h WHERE id = 3", h=audit.chain_hash(row["prev_hash"], row))
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 3)
    assert result.problem == "row 3 was altered and its hash recomputed, so row 4 no longer follows it"


def test_a_chain_rewritten_from_an_altered_row_on_is_caught_by_the_head(any_store: Instance) -> None:
    _append(5)
    _drop_triggers(any_store.kind)
    rows = [dict(r) for r in _rows()]
    rows[2]["amount"] = 1
    for i in range(2, 5):  # recompute every link from row 3 to the end, as a careful intruder would
        rows[i]["prev_hash"] = rows[i - 1]["hash"]
        rows[i]["hash"] = audit.chain_hash(rows[i]["prev_hash"], rows[i])
        _sql(
            "UPDATE audit_log SET amount = :a, prev_hash = :p, hash = :h WHERE id = :id",
            a=rows[i]["amount"],
            p=rows[i]["prev_hash"],
            h=rows[i]["hash"],
            id=rows[i]["id"],
        )
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 5)
    assert "row 5 is not the row the chain head kept outside the table names" in result.problem


def test_a_deleted_middle_row_is_found(any_store: Instance) -> None:
    _append(6)
    _drop_triggers(any_store.kind)
    _sql("DELETE FROM audit_log WHERE id = 3")
    result = audit.verify()
    assert (result.ok, result.first_bad_id, result.problem) == (False, 3, "a row is missing between 2 and 4")
    _sql("DELETE FROM audit_log WHERE id = 4")
    result = audit.verify()
    assert (result.first_bad_id, result.problem) == (3, "rows 3 to 4 are missing (between 2 and 5)")


def test_deleted_first_rows_are_found(any_store: Instance) -> None:
    _append(4)
    _drop_triggers(any_store.kind)
    _sql("DELETE FROM audit_log WHERE id <= 2")
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 1)
    assert result.problem == "the rows before row 3 were removed (the chain does not start there)"


def test_rows_cut_off_the_end_are_found_through_the_head_kept_outside(any_store: Instance) -> None:
    _append(6)
    head = _head()
    _drop_triggers(any_store.kind)
    _sql("DELETE FROM audit_log WHERE id >= 5")
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 5)
    assert result.problem == "rows after 4 were removed (the chain head kept outside the table says 6)"

    # Billy keeps recording, but the head stays where it was: the next rows do not hide the cut.
    _append(3, start=10)
    assert _head() == head and len(_rows()) == 7
    result = audit.verify()
    assert not result.ok and result.first_bad_id == 6
    assert "rows were cut off the end and others took their place" in result.problem

    _sql("DELETE FROM audit_log")
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 1)
    assert result.problem == "every row was removed (the chain head kept outside the table says 6)"


def test_a_row_inserted_out_of_band_is_found(any_store: Instance) -> None:
    _append(4)
    last = _rows()[-1]
    # A forged row whose hash does not fit it.
    _forge(5, last["hash"], row_hash="f" * 64)
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 5)
    assert result.problem.startswith("row 5 was inserted out of band")


def test_a_well_forged_row_is_found_beyond_the_head(any_store: Instance) -> None:
    _append(4)
    _forge(5, _rows()[-1]["hash"])  # links and hashes correctly: only the head kept outside knows
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 5)
    assert result.problem.startswith("row 5 is newer than the chain head kept outside the table (row 4)")


def test_a_row_replaced_in_the_middle_is_found(any_store: Instance) -> None:
    _append(5)
    _drop_triggers(any_store.kind)
    _sql("DELETE FROM audit_log WHERE id = 3")
    _forge(3, _rows()[1]["hash"], outcome="denied")
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 3)
    assert "row 4 no longer follows it" in result.problem


def test_a_failed_head_write_is_reported_then_caught_up(any_store: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    _append(2)
    store = get_secret_store()

    def broken_set(name: str, value: str) -> None:
        raise OSError("secret store unreachable")

    with monkeypatch.context() as m:
        m.setattr(store, "set", broken_set)
        audit.record(ACTOR, "auth.login", "ok")  # the row is still written; the failure is logged
    assert len(_rows()) == 3 and _head() is not None and _head().startswith("2:")
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 3)
    assert "Billy stopped between writing it and recording the new head" in result.problem
    audit.record(ACTOR, "auth.login", "ok")
    assert audit.verify().ok and _head().startswith("4:")


# --- one writer at a time ---------------------------------------------------------------------


@pytest.mark.parametrize("process_lock", [True, False], ids=["process-lock", "database-lock-only"])
def test_concurrent_appends_make_one_chain(
    any_store: Instance, monkeypatch: pytest.MonkeyPatch, process_lock: bool
) -> None:
    if not process_lock:  # the database's own lock alone must serialise, as across processes
        monkeypatch.setattr(audit, "_append_lock", _NoLock())
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            _append(20, start=n * 100)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = _rows()
    assert [r["id"] for r in rows] == list(range(1, 161))
    assert len({r["prev_hash"] for r in rows}) == 160  # no fork: every hash is followed once
    result = audit.verify()
    assert (result.ok, result.rows_checked) == (True, 160), result.problem
    assert _head() == f"160:{rows[-1]['hash']}"


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


WRITER = """
import sys
from services import audit
from services.permissions import Actor, Source
actor = Actor(2, "clerk@example.com", "billing_clerk", Source.API, "10.0.0.2", "writer")
print("ready", flush=True)
sys.stdin.readline()
for i in range(25):
    audit.record(actor, "charges.refund", "ok", audit.AuditDraft(targets=[f"ch_{i}"]))
"""


def test_appends_from_several_processes_make_one_chain(any_store: Instance) -> None:
    _append(1)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER], cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for w in writers:
        assert w.stdout.readline().strip() == "ready"
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()
    for w in writers:
        assert w.wait(timeout=120) == 0
    rows = _rows()
    assert [r["id"] for r in rows] == list(range(1, 102))
    result = audit.verify()
    assert (result.ok, result.rows_checked) == (True, 101), result.problem
    assert _head() == f"101:{rows[-1]['hash']}"


# --- the migration chains what was there before it -----------------------------------------------


def _alembic(url: str) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.attributes["configure_logging"] = False
    cfg.attributes["database_url"] = url
    return cfg


OLD_AUDIT_LOG = sa.table(  # audit_log as revision 0002 left it
    "audit_log",
    *(sa.column(c.name, c.type) for c in TABLE.columns if c.name not in ("prev_hash", "hash")),
)


def test_the_migration_chains_rows_written_before_it(any_store: Instance) -> None:
    cfg = _alembic(any_store.database_url)
    command.downgrade(cfg, "0002")
    with db.get_engine().connect() as conn:
        assert {c["name"] for c in sa.inspect(conn).get_columns("audit_log")} & {"prev_hash", "hash"} == set()
    at = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    old_rows = [
        {"id": i, "at": at + timedelta(minutes=i), "actor_id": 1, "actor_email": "owner@example.com",
         "actor_role": "owner", "source": "dashboard", "client_address": "127.0.0.1", "user_agent": "old",
         "action": "auth.login", "target_ids": [], "amount": None, "currency": None, "outcome": "ok",
         "error": None, "details": {"old": i}}
        for i in (1, 2, 5)  # a gap, as a rolled-back insert leaves in a PostgreSQL sequence
    ]  # fmt: skip
    with db.get_engine().begin() as conn:
        conn.execute(sa.insert(OLD_AUDIT_LOG), old_rows)
    _sql("UPDATE audit_log SET outcome = 'denied' WHERE id = 2")  # still allowed before 0003

    command.upgrade(cfg, "head")
    rows = _rows()
    assert [r["id"] for r in rows] == [1, 2, 5] and rows[1]["outcome"] == "denied"
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    result = audit.verify()
    assert (result.ok, result.rows_checked) == (True, 3)
    assert "No chain head is kept outside the table yet" in result.note
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        _sql("UPDATE audit_log SET outcome = 'ok' WHERE id = 2")

    _append(1)  # Billy's next row continues the chain and writes the head
    rows = _rows()
    assert rows[-1]["id"] == 6 and rows[-1]["prev_hash"] == rows[-2]["hash"]
    assert _head() == f"6:{rows[-1]['hash']}"
    assert audit.verify().ok

    _forge(3, "0" * 64)  # a row slipped into the old gap is not part of the chain
    result = audit.verify()
    assert (result.ok, result.first_bad_id) == (False, 3)
    assert result.problem == "row 3 was inserted out of band (row 5 follows row 2 directly)"


# --- the operator's command -----------------------------------------------------------------


def test_billy_audit_verify_prints_the_result(any_store: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    _append(3)
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "Audit log intact: 3 rows checked" in out

    _drop_triggers(any_store.kind)
    _sql("UPDATE audit_log SET actor_email = 'someone@else.com' WHERE id = 2")
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "Audit log BROKEN at row 2: row 2 was altered." in out
