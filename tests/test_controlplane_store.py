"""The control plane's own database: its migrations build its models, its event log cannot be
rewritten, and none of it leaks into the instance's schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from controlplane.config import ControlPlaneSettings
from controlplane.store import VERSION_TABLE, ControlPlaneModel, Organisation, OrgState, Store, record
from tests.controlplane_fixtures import cp_store  # noqa: F401 - fixture

NOW = datetime(2027, 1, 4, 9, 30, tzinfo=UTC)


def _org(store: Store, slug: str = "acme") -> None:
    with store.session() as session:
        session.add(
            Organisation(
                slug=slug,
                name="Acme",
                plan="starter",
                owner_name="Jane",
                owner_email="jane@acme.example",
                state=OrgState.TRIALING,
                trial_ends_at=NOW,
                created_at=NOW,
            )
        )
        session.flush()
        record(session, slug, "signup.started", NOW, plan="starter")


def test_the_migrations_build_exactly_the_models(cp_store: Store) -> None:  # noqa: F811
    """A model changed without a migration (or a migration drifting from the models) fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with cp_store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        diff = compare_metadata(context, ControlPlaneModel.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    assert sa.inspect(cp_store.engine).has_table(VERSION_TABLE)


def test_the_control_plane_tables_stay_out_of_the_instance_schema() -> None:
    """The instance's migrations are checked against SQLModel.metadata: no customer list may join it."""
    assert {"organisation", "org_event", "stripe_event_seen"} <= set(ControlPlaneModel.metadata.tables)
    assert not {"organisation", "org_event", "stripe_event_seen"} & set(SQLModel.metadata.tables)


def test_org_event_refuses_update_and_delete(cp_store: Store) -> None:  # noqa: F811
    """What the control plane did to an organisation stays on record, whoever runs the SQL."""
    _org(cp_store)
    statements = [
        "UPDATE org_event SET kind = 'nothing.happened'",
        "DELETE FROM org_event",
    ]
    if cp_store.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE org_event")
    else:
        statements.append("INSERT OR REPLACE INTO org_event (id, org_slug, at, kind, detail) "
                          "SELECT id, org_slug, at, 'rewritten', detail FROM org_event")  # fmt: skip
    for statement in statements:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), cp_store.engine.begin() as conn:
            conn.execute(sa.text(statement))
    (event,) = cp_store.events("acme")
    assert (event.kind, event.detail, event.at) == ("signup.started", {"plan": "starter"}, NOW)
    _org(cp_store, "globex")  # appending still works
    assert [e.org_slug for e in cp_store.events("globex")] == ["globex"]


def test_slugs_are_unique_in_the_database(cp_store: Store) -> None:  # noqa: F811
    _org(cp_store)
    with pytest.raises(sa.exc.IntegrityError):
        _org(cp_store)


def test_downgrade_and_upgrade_again(cp_store: Store) -> None:  # noqa: F811
    cp_store.downgrade("base")
    assert not sa.inspect(cp_store.engine).has_table("org_event")
    cp_store.migrate()
    _org(cp_store)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), cp_store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM org_event"))


def test_the_default_database_is_a_sqlite_file_under_the_root(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BILLY_CONTROLPLANE_ROOT", str(tmp_path / "cp"))
    monkeypatch.delenv("BILLY_CONTROLPLANE_DATABASE_URL", raising=False)
    settings = ControlPlaneSettings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'cp' / 'controlplane.db'}"
    store = Store(settings.resolved_database_url)
    store.migrate()
    store.dispose()
    assert (tmp_path / "cp" / "controlplane.db").exists()


def test_a_bad_setting_names_its_variable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from controlplane.config import load_settings
    from services.errors import SettingsInvalid

    monkeypatch.setenv("BILLY_CONTROLPLANE_SMTP_PORT", "twenty-five")
    with pytest.raises(SettingsInvalid, match="BILLY_CONTROLPLANE_SMTP_PORT is 'twenty-five'"):
        load_settings()
