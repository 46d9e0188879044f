"""Alembic environment: the store's URL and metadata come from the app itself."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlmodel import SQLModel

import services.models  # noqa: F401 - registers every table on SQLModel.metadata
from services.config import get_settings
from services.db import make_engine
from services.search import include_name, include_object

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata
# Migration 0009's search objects (SQLite FTS5 tables, PostgreSQL trigram indexes) are not
# models: autogenerate must neither drop them nor see them as drift. Exactly those are skipped.
FILTERS = {"include_name": include_name, "include_object": include_object}


def _url() -> str:
    return config.attributes.get("database_url") or get_settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True, **FILTERS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True, **FILTERS)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
