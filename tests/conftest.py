"""Shared fixtures: a fresh instance (store, secret store, settings) per test, on real peers.

- `instance`: SQLite store in a temporary folder, migrated by alembic (once per run, then copied).
- `any_store`: the same, once on SQLite and once on PostgreSQL (a fresh database each).
- `sandbox`: one Stripe sandbox process for the whole session, reset per test by `stripe`.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from controlplane.local_http import local_http
from services import clock, db, identity, organization, reports, search, secrets
from services.cli import migrate
from services.config import get_settings
from services.permissions import Actor
from services.throttle import get_login_throttle
from tests.keyvault_fixtures import fake_vault, vault_store  # noqa: F401 - fixtures for every test module
from tests.mail_fixtures import smtp_catcher  # noqa: F401 - a fixture for every test module

PG_HOST = os.environ.get("BILLY_TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("BILLY_TEST_PG_USER", "postgres")


def forget_process_store() -> None:
    """Close the store `get_secret_store` made, if any (a Key Vault one stops hearing other
    workers' signals and closes its client), and forget it."""
    made = secrets.get_secret_store.cache_info().currsize
    if made and (close := getattr(secrets.get_secret_store(), "close", None)):
        close()
    secrets.get_secret_store.cache_clear()


def _clear_caches() -> None:
    get_settings.cache_clear()
    db.get_engine.cache_clear()
    forget_process_store()
    get_login_throttle.cache_clear()
    reports.forget_dashboard()
    reports.shared_pages.forget()
    reports.late_totals.forget()
    search.forget_estimates()


@functools.cache
def hashed_once(password: str) -> str:
    """A real argon2 hash of `password`, made once per test process. argon2 costs about 0.25 s a
    hash on purpose; the fixtures' Owners and members all share a few passwords, so hashing each
    once saves minutes per run. Every sign-in still verifies a real argon2 hash."""
    return identity.hash_password(password)


def counts_only_late(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every total costs more than a page may spend on it (as "refunded" at a million charges):
    a page's own count gives up, the late count (with its own budget) succeeds."""
    real = reports.count_matching

    def dear(stmt: Any, budget_ms: int | None = None) -> reports.ListTotal | None:
        return None if budget_ms is None else real(stmt, budget_ms)

    monkeypatch.setattr(reports, "count_matching", dear)


# A page spends at most reports.PAGE_COUNT_BUDGET_MS (3 ms) counting its total, else the total
# is counted after the page. On a CI machine running two test workers, a PostgreSQL backend can
# wait that long for a core, so even a ten-row count would now and then come late, and a test
# reading `page.total` at once would flake. The tests give pages a budget no healthy count
# misses; the ones about late totals make counts too dear on purpose.
TEST_PAGE_COUNT_BUDGET_MS = 200


@pytest.fixture(autouse=True)
def _page_counts_never_miss_on_a_busy_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "PAGE_COUNT_BUDGET_MS", TEST_PAGE_COUNT_BUDGET_MS)


@pytest.fixture(autouse=True)
def _hash_fixture_passwords_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signup (the `owner` fixtures) hashes through `hashed_once`; invites and resets still hash afresh."""
    monkeypatch.setattr(organization, "hash_password", hashed_once)


@pytest.fixture(autouse=True)
def _wall_clock() -> Iterator[None]:
    """Every test starts and ends on the wall clock, whatever it did to `services.clock`."""
    clock.reset()
    yield
    clock.reset()


@dataclass
class Instance:
    data_dir: Path
    database_url: str
    kind: str  # "sqlite" | "postgresql"


def _pg_admin():  # type: ignore[no-untyped-def]
    conn = psycopg2.connect(host=PG_HOST, user=PG_USER, dbname="postgres")
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        _pg_admin().close()
        return True
    except psycopg2.OperationalError:
        return False


@dataclass
class Templates:
    """Stores migrated once per test run (per xdist worker) and copied for every test: a SQLite
    file copy, or PostgreSQL's `CREATE DATABASE … TEMPLATE`. Tests still run the real migrations.

    A PostgreSQL database a test is done with is emptied and kept for the next test of the worker
    (a few ms) instead of dropped and made again (about 0.3 s each, hundreds of times a run). One
    whose schema is no longer the template's, or that cannot be emptied, is dropped instead."""

    folder: Path
    postgres_ok: bool
    _pg_name: str = ""
    _pg_head: str = ""
    _pg_spare: list[str] = field(default_factory=list)

    def sqlite_copy(self, target: Path) -> None:
        source = self.folder / "template.db"
        if not source.exists():
            migrate(f"sqlite:///{source}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def postgres_copy(self) -> str:
        """A migrated, empty database for one test: a spare one, else a new copy of the template."""
        if self._pg_spare:
            return self._pg_spare.pop()
        dbname = f"billy_test_{uuid.uuid4().hex[:12]}"
        conn = _pg_admin()
        with conn.cursor() as cur:
            if not self._pg_name:
                self._pg_name = f"billy_template_{uuid.uuid4().hex[:12]}"
                cur.execute(f'CREATE DATABASE "{self._pg_name}"')
                migrate(f"postgresql+psycopg2://{PG_USER}@{PG_HOST}/{self._pg_name}")
                self._pg_head = _schema_fingerprint(self._pg_name)
            cur.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{self._pg_name}"')
        conn.close()
        return dbname

    def postgres_release(self, dbname: str) -> None:
        """Keep `dbname` for the next test when it can be emptied back to the template's state."""
        try:
            if _empty_database(dbname) == self._pg_head:
                self._pg_spare.append(dbname)
                return
        except psycopg2.Error:
            pass
        _drop_database(dbname)

    def drop(self) -> None:
        for dbname in [*self._pg_spare, self._pg_name]:
            if dbname:
                _drop_database(dbname)


# Everything a test could change in the schema (a test that drops the audit trigger to play an
# attacker, or migrates down and up): a database is reused only while this matches the template's.
SCHEMA_FINGERPRINT = """
SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (
  SELECT 't:' || tgrelid::regclass::text || '.' || tgname || ':' || tgenabled::text FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL SELECT 'i:' || indexdef FROM pg_indexes WHERE schemaname = 'public'
  UNION ALL SELECT 'k:' || conrelid::regclass::text || '.' || conname FROM pg_constraint
    JOIN pg_namespace n ON n.oid = connamespace WHERE n.nspname = 'public'
  UNION ALL SELECT 'c:' || table_name || '.' || column_name || ':' || data_type || ':' || is_nullable
    FROM information_schema.columns WHERE table_schema = 'public'
  UNION ALL SELECT 'f:' || p.proname || ':' || md5(p.prosrc) FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
  UNION ALL SELECT 'r:' || rulename FROM pg_rules WHERE schemaname = 'public'
  UNION ALL SELECT 'v:' || version_num FROM alembic_version
) AS parts(x)
"""


def _schema_fingerprint(dbname: str) -> str:
    """The template's schema fingerprint (`SCHEMA_FINGERPRINT`)."""
    conn = psycopg2.connect(host=PG_HOST, user=PG_USER, dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(SCHEMA_FINGERPRINT)
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def _empty_database(dbname: str) -> str:
    """Delete every row (the audit log's no-delete triggers are bypassed as replication does) and
    restart every sequence; answer the schema's fingerprint, to compare with the template's."""
    admin = _pg_admin()
    with admin.cursor() as cur:  # whatever the test left connected (its own engines, workers)
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
    admin.close()
    conn = psycopg2.connect(host=PG_HOST, user=PG_USER, dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SET lock_timeout = '2s'")
            cur.execute("SET LOCAL session_replication_role = replica")
            cur.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
            for (table,) in cur.fetchall():
                cur.execute(f'DELETE FROM "{table}"')  # noqa: S608 - names read from the catalogue
            cur.execute(
                "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'S' AND n.nspname = 'public'"
            )
            cur.execute(SCHEMA_FINGERPRINT)
            fingerprint = str(cur.fetchone()[0])
        conn.commit()
        return fingerprint
    finally:
        conn.close()


def _drop_database(dbname: str) -> None:
    conn = _pg_admin()
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory, postgres_available: bool) -> Iterator[Templates]:
    made = Templates(tmp_path_factory.mktemp("store-templates"), postgres_available)
    yield made
    made.drop()


def _make_instance(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, templates: Templates
) -> Iterator[Instance]:
    data_dir = tmp_path / "data"
    dbname = ""
    if kind == "postgresql":
        if not templates.postgres_ok:
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL is not reachable; `make test` should have started it")
            pytest.skip("PostgreSQL is not running")
        dbname = templates.postgres_copy()
        url = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}/{dbname}"
    else:
        database = data_dir / "db" / "billy.db"
        templates.sqlite_copy(database)
        url = f"sqlite:///{database}"
    monkeypatch.setenv("BILLY_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BILLY_DATABASE_URL", url)
    monkeypatch.setenv("BILLY_FIRST_RUN_SIGNUP", "true")
    _clear_caches()
    try:
        yield Instance(data_dir, url, kind)
    finally:
        db.get_engine().dispose()
        _clear_caches()
        if dbname:
            templates.postgres_release(dbname)


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, templates: Templates) -> Iterator[Instance]:
    yield from _make_instance("sqlite", tmp_path, monkeypatch, templates)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, templates: Templates
) -> Iterator[Instance]:
    yield from _make_instance(request.param, tmp_path, monkeypatch, templates)


def redis_or_skip() -> str:
    """The test Redis's URL (`BILLY_TEST_REDIS_URL`, else the machine's database 0). A test needing it
    is skipped when it does not answer, and fails under CI, where `make test` starts it."""
    import redis

    url = os.environ.get("BILLY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url).ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail("Redis is not reachable; `make test` should have started it")
        pytest.skip("Redis is not running")
    return url


# --- Stripe sandbox -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox():  # type: ignore[no-untyped-def]
    import sandbox as sandbox_pkg

    handle = sandbox_pkg.run_in_thread(port=0)
    yield handle
    handle.stop()


@dataclass
class StripePeer:
    url: str
    demo_key: str

    def restricted_key(self, **body: object) -> str:
        """A new restricted key with a permission profile, e.g. `profile="billy", without=[...]`."""
        response = local_http().post(f"{self.url}/_config/restricted_keys", json=body, timeout=10)
        response.raise_for_status()
        return response.json()["key"]

    def secret_client(self):  # type: ignore[no-untyped-def]
        """An SDK client with a full secret key, for arranging data the way a test needs it (one per
        sandbox address: building one builds HTTP clients too, a few ms each, many times a test)."""
        return _secret_client(self.url)


@functools.cache
def _secret_client(url: str):  # type: ignore[no-untyped-def]
    import stripe

    return stripe.StripeClient("sk_test_billytests", base_addresses={"api": url})


@pytest.fixture
def stripe_peer(sandbox, monkeypatch: pytest.MonkeyPatch) -> StripePeer:  # type: ignore[no-untyped-def]
    """A clean sandbox, and the instance pointed at it."""
    import sandbox as sandbox_pkg

    sandbox.reset()
    monkeypatch.setenv("BILLY_STRIPE_API_BASE", sandbox.url)
    monkeypatch.setenv("BILLY_SANDBOX", "true")
    monkeypatch.setenv("BILLY_SANDBOX_DEMO_KEY", sandbox_pkg.DEMO_RESTRICTED_KEY)
    # The sandbox is not Stripe: tests need not wait for Stripe's test-mode rate limit.
    monkeypatch.setenv("BILLY_STRIPE_REQUESTS_PER_SECOND", "1000")
    get_settings.cache_clear()
    return StripePeer(sandbox.url, sandbox_pkg.DEMO_RESTRICTED_KEY)


# The Stripe contract suites (tests/test_stripe_contract*.py) run each case on the sandbox and,
# when a test-mode key is given, on real Stripe with the very same assertions.
REAL_STRIPE_KEY = os.environ.get("BILLY_STRIPE_TEST_KEY", "")


@pytest.fixture(params=["sandbox", pytest.param("real", marks=pytest.mark.real_stripe)])
def stripe_client(request: pytest.FixtureRequest) -> Iterator[object]:
    """A secret-key SDK client on a clean sandbox, or on real Stripe's test mode."""
    import stripe

    if request.param == "real":
        if not REAL_STRIPE_KEY.startswith("sk_test_"):
            pytest.skip("set BILLY_STRIPE_TEST_KEY to a Stripe test-mode secret key to check real Stripe")
        yield stripe.StripeClient(REAL_STRIPE_KEY)
        return
    sandbox = request.getfixturevalue("sandbox")
    sandbox.reset()
    yield stripe.StripeClient("sk_test_contract", base_addresses={"api": sandbox.url})


# --- people ---------------------------------------------------------------------------------

OWNER_EMAIL = "owner@example.com"
OWNER_PASSWORD = "a-long-owner-password"


@pytest.fixture
def owner(instance: Instance) -> Actor:
    return _signup_owner()


@pytest.fixture
def any_store_owner(any_store: Instance) -> Actor:
    return _signup_owner()


def _signup_owner() -> Actor:
    from services.organization import signup
    from services.permissions import Source

    member = signup("Acme Ltd", "pro", OWNER_EMAIL, OWNER_PASSWORD)
    return Actor(member.id, member.email, member.role, Source.DASHBOARD, "127.0.0.1", "pytest")


def member_actor(role: str, email: str) -> Actor:
    """A member with another role, created straight in the store (invites come in issue 3)."""
    from services.db import session_scope
    from services.models import Member
    from services.permissions import Source

    with session_scope() as session:
        member = Member(email=email, password_hash=hashed_once("another-long-password"), role=role)
        session.add(member)
        session.flush()
        member_id = member.id
    return Actor(member_id, email, role, Source.DASHBOARD, "127.0.0.1", "pytest")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run one app at a time on one shared port and frontend build: under xdist
    (`--dist loadgroup`) they all go to one worker, while the others take everything else."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group("browser"))
