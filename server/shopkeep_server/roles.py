"""The database roles: the owner runs the migrations and owns every table and function; the
server logs in as a member of APP_ROLE, whose privileges are sql/90_privileges.sql
(docs/operations.md, "Least privilege")."""

from __future__ import annotations

import contextlib

import psycopg
import psycopg.errors
from psycopg import sql

from .db import function_files, migration_files

# The group role the server's login is a member of (made by migration 0005).
APP_ROLE = "shopkeep_app"


def create_app_login(conn: psycopg.Connection, login: str, password: str | None = None) -> None:
    """Makes ``login`` a role that can log in as a member of APP_ROLE (with ``password``, when
    given), unless it exists; either way it ends a member. Needs CREATEROLE (the embedded
    PostgreSQL's superuser, or an administrator) and APP_ROLE made (migrate first)."""
    name = sql.Identifier(login)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
    if exists is None:
        # Made by another process a moment ago: it is there, as wanted.
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(name)
            )
    if password is not None:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(password)))
    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), name))


def login_url(url: str, login: str, password: str | None = None) -> str:
    """``url`` with its user (and password) replaced: the same database, as ``login``."""
    params: dict[str, str] = {"user": login}
    if password is not None:
        params["password"] = password
    return psycopg.conninfo.make_conninfo(url, **params)


def privileges_script() -> str:
    """The SQL an administrator runs to set up the roles on a PostgreSQL the server does not
    manage (``shopkeep-server migrate --print-grants``): the group role, a login for the server,
    and, in the store's database once migrated, the privileges (which migrate applies itself
    when it may)."""
    role = next(sql_text for _, name, sql_text in migration_files() if "_app_role" in name)
    privileges = next(f.sql for f in function_files() if f.name.endswith("_privileges.sql"))
    return (
        "-- 1. As an administrator (a role with CREATEROLE), once per PostgreSQL cluster:\n"
        f"{role}\n"
        "-- The server's login (choose the name and the password; SHOPKEEP_DATABASE_URL uses\n"
        "-- them). The role that runs migrations (SHOPKEEP_MIGRATE_DATABASE_URL) owns the\n"
        "-- tables: make it the owner of the database, or give it CREATE on the schema.\n"
        f"CREATE ROLE shopkeep_server LOGIN PASSWORD 'change-me' IN ROLE {APP_ROLE};\n\n"
        "-- 2. In the store's database, as the owner, after `shopkeep-server migrate` (which\n"
        "-- applies these itself; run them by hand only to repair privileges):\n"
        f"{privileges}"
    )
