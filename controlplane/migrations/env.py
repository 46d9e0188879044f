"""Alembic environment of the control plane's database: its URL and metadata are the control plane's own."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from controlplane.config import get_settings
from controlplane.store import VERSION_TABLE, ControlPlaneModel
from services.db import make_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = ControlPlaneModel.metadata


def _url() -> str:
    return str(config.attributes.get("database_url") or get_settings().resolved_database_url)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True, version_table=VERSION_TABLE
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
