"""The test stores themselves: a reused PostgreSQL database must be as empty as a fresh copy."""

from __future__ import annotations

import psycopg2
import pytest

from tests.conftest import PG_HOST, PG_USER, Templates


def _run(dbname: str, *statements: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(host=PG_HOST, user=PG_USER, dbname=dbname)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


@pytest.fixture
def pg_templates(templates: Templates) -> Templates:
    if not templates.postgres_ok:
        pytest.skip("PostgreSQL is not running")
    return templates


def test_a_released_database_comes_back_empty_with_its_sequences_restarted(pg_templates: Templates) -> None:
    first = pg_templates.postgres_copy()
    _run(
        first,
        "INSERT INTO organization (id, name, plan, trial_ends_at, created_at) VALUES (1, 'Left Over', 'pro', now(), now())",
    )
    _run(
        first,
        "INSERT INTO member (email, name, password_hash, role, active, created_at) VALUES ('left@example.com', '', 'x', 'owner', true, now())",
    )
    pg_templates.postgres_release(first)
    again = pg_templates.postgres_copy()
    assert again == first  # reused, not copied again
    assert _run(again, "SELECT count(*) FROM organization")[0][0] == 0
    assert _run(again, "SELECT count(*) FROM member")[0][0] == 0
    inserted = _run(
        again,
        "INSERT INTO member (email, name, password_hash, role, active, created_at) VALUES ('a@example.com', '', 'x', 'owner', true, now()) RETURNING id",
    )
    assert inserted[0][0] == 1
    pg_templates.postgres_release(again)


def test_a_database_whose_schema_a_test_changed_is_dropped_not_reused(pg_templates: Templates) -> None:
    tampered = pg_templates.postgres_copy()
    _run(tampered, "ALTER TABLE audit_log DISABLE TRIGGER USER")
    pg_templates.postgres_release(tampered)
    fresh = pg_templates.postgres_copy()
    assert fresh != tampered
    assert tampered not in {row[0] for row in _run("postgres", "SELECT datname FROM pg_database")}
    pg_templates.postgres_release(fresh)
