"""One PostgreSQL database and one login role per organisation, on a server several organisations share.

Isolation is PostgreSQL's own privileges, so it holds whatever the network allows:

- The database's `CONNECT` and `TEMPORARY` are revoked from `PUBLIC` (PostgreSQL grants them to
  every role by default) and granted to the organisation's role alone. Every organisation's script
  does this for its own database, so no organisation's role can open another's.
- The role owns its database, so the schema it migrates is its own (PostgreSQL 15+ gives the
  `public` schema to the database owner) and nothing needs granting per table. It keeps `INHERIT`:
  the owner's rights on `public` come through the implicit `pg_database_owner` membership, which
  `NOINHERIT` would cut (it is a member of no other role, so inheriting grants nothing else).
- The role can create nothing outside it: no superuser, `CREATEDB`, `CREATEROLE`, replication or
  RLS bypass, and it is a member of no other role.
- The server admin runs the script. Azure's admin is not a superuser, only `CREATEROLE`; to hand a
  database to a role it must be a member of that role, hence `GRANT role TO CURRENT_USER` (the
  admin, never another organisation).

The password is bound by the driver when the script runs (`%(password)s`, psycopg2's named
parameter) and goes straight into the organisation's vault: the script, the plan that carries it
and every log of them hold no password.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
PASSWORD_PARAMETER = "%(password)s"
CONNECTION_LIMIT = 40  # an instance's pool (SQLAlchemy's 5 + 10 overflow) per worker, a few workers, a migration


def _ident(name: str) -> str:
    """A double-quoted identifier; names are generated, so this only guards against a bad generator."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a generated database or role name")
    return f'"{name}"'


def role_sql(database: str, role: str, *, connection_limit: int = CONNECTION_LIMIT) -> str:
    """The script that makes `role` the only login of `database`. Run as the server admin, connected
    to the `postgres` database, after the database exists; safe to run again (it resets the password).

    Executed whole with `cursor.execute(script, {"password": ...})`: one transaction."""
    db, who = _ident(database), _ident(role)
    # Identifiers cannot be bound as parameters; `_ident` admits only generated names.
    return f"""\
-- Agent Billy: {role} is the only role that may use database {database}.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{role}') THEN
    CREATE ROLE {who} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  END IF;
END
$$;
ALTER ROLE {who} WITH LOGIN CONNECTION LIMIT {int(connection_limit)} PASSWORD {PASSWORD_PARAMETER};
GRANT {who} TO CURRENT_USER;
ALTER DATABASE {db} OWNER TO {who};
REVOKE ALL ON DATABASE {db} FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {who};
"""  # noqa: S608


def drop_role_sql(role: str) -> str:
    """Removes the role once its database is deleted (the role owns it, so not before)."""
    return f"DROP ROLE IF EXISTS {_ident(role)};\n"
