"""Least privilege: the server's role (shopkeep_app) can do what the API does and nothing that
would switch the ledger's protections off. The rest of the suite proves the first half (the
``app`` fixture and the live server run as that role); this module proves the second."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import psycopg.errors
import pytest
from click.testing import CliRunner

from shopkeep_server import db, roles
from shopkeep_server.cli import main
from shopkeep_server.embedded import APP_LOGIN as APP_LOGIN_EMBEDDED
from shopkeep_server.launcher import PrivateDatabase, StoreServer
from support import LiveServer, app_database_url
from support.database import APP_LOGIN

# Each is refused with SQLSTATE 42501 and a message of PostgreSQL's own privilege checks (the
# append-only trigger raises 42501 too, with "is append-only": that would mean the privilege
# check let the statement through).
REFUSED = [
    ("ALTER TABLE ledger_entries DISABLE TRIGGER USER", "must be owner of table ledger_entries"),
    ("ALTER TABLE ledger_entries DISABLE TRIGGER ALL", "must be owner of table ledger_entries"),
    (
        "DROP TRIGGER ledger_entries_append_only ON ledger_entries",
        "must be owner of relation ledger_entries",
    ),
    (
        "SET session_replication_role = replica",
        'permission denied to set parameter "session_replication_role"',
    ),
    ("UPDATE ledger_entries SET delta = delta", "permission denied for table ledger_entries"),
    ("DELETE FROM ledger_entries", "permission denied for table ledger_entries"),
    ("TRUNCATE ledger_entries", "permission denied for table ledger_entries"),
    ("UPDATE item_ledger SET delta = delta", "permission denied for table item_ledger"),
    ("DELETE FROM catalog_items", "permission denied for table catalog_items"),
    ("TRUNCATE wallets", "permission denied for table wallets"),
    ("DELETE FROM wallets", "permission denied for table wallets"),
    ("DELETE FROM purchases", "permission denied for table purchases"),
    ("DROP FUNCTION sk_purchase", "must be owner of function sk_purchase"),
    ("DROP FUNCTION sk_refuse_change() CASCADE", "must be owner of function sk_refuse_change"),
    ("DROP TABLE ledger_entries", "must be owner of table ledger_entries"),
    ("ALTER TABLE wallets DROP CONSTRAINT wallets_pkey", "must be owner of table wallets"),
    ("CREATE TABLE shadow (id int)", "permission denied for schema public"),
    (
        "CREATE FUNCTION sk_shadow() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "permission denied for schema public",
    ),
    ("DELETE FROM schema_migrations", "permission denied for table schema_migrations"),
    ("ALTER ROLE shopkeep_test_app SUPERUSER", "permission denied to alter role"),
]


@pytest.fixture
def app_conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection as the suite's login for the server's role, in a transaction rolled back."""
    with psycopg.connect(app_database_url(database_url)) as connection:
        try:
            yield connection
        finally:
            connection.rollback()


@pytest.mark.parametrize(("statement", "message"), REFUSED, ids=[s for s, _ in REFUSED])
def test_the_app_role_is_refused(
    app_conn: psycopg.Connection, statement: str, message: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        app_conn.execute(statement)
    assert message in str(refused.value)


def test_the_ledger_stays_append_only_for_the_app_role(
    app_conn: psycopg.Connection, database_url: str
) -> None:
    """After every refusal above the triggers are still there and enabled, as the owner sees."""
    for statement, _ in REFUSED:
        with app_conn.transaction(force_rollback=True), pytest.raises(psycopg.Error):
            app_conn.execute(statement)
    with db.connect(database_url) as owner:
        triggers = owner.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'ledger_entries'::regclass"
            " AND NOT tgisinternal ORDER BY tgname"
        ).fetchall()
    assert triggers == [("ledger_entries_append_only", "O"), ("ledger_entries_no_truncate", "O")]


def test_the_app_role_owns_nothing_and_is_no_superuser(app_conn: psycopg.Connection) -> None:
    user, superuser, createrole, createdb, bypassrls = (
        app_conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles"
            " WHERE rolname = current_user"
        ).fetchone()
        or (None,) * 5
    )
    assert (user, superuser, createrole, createdb, bypassrls) == (
        APP_LOGIN,
        False,
        False,
        False,
        False,
    )
    owned = app_conn.execute(
        "SELECT count(*) FROM pg_class WHERE pg_has_role(current_user, relowner, 'USAGE')"
        " AND relnamespace = current_schema()::regnamespace"
    ).fetchone()
    functions = app_conn.execute(
        "SELECT count(*) FROM pg_proc WHERE pg_has_role(current_user, proowner, 'USAGE')"
        " AND pronamespace = current_schema()::regnamespace"
    ).fetchone()
    assert (owned, functions) == ((0,), (0,))


def test_the_app_role_has_exactly_the_dml_the_api_needs(app_conn: psycopg.Connection) -> None:
    rows = app_conn.execute(
        "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type)"
        " FROM information_schema.role_table_grants WHERE grantee = %s"
        " AND table_schema = current_schema() GROUP BY table_name ORDER BY table_name",
        (roles.APP_ROLE,),
    ).fetchall()
    assert dict(rows) == {
        "catalog_currencies": "INSERT,SELECT",
        "catalog_item_segments": "INSERT,SELECT",
        "catalog_items": "INSERT,SELECT",
        "catalog_products": "INSERT,SELECT",
        "chargebacks": "INSERT,SELECT",
        "catalog_offers": "INSERT,SELECT",
        "catalog_promo_codes": "INSERT,SELECT",
        "catalog_versions": "INSERT,SELECT",
        "event_positions": "INSERT,SELECT,UPDATE",
        "events": "INSERT,SELECT,UPDATE",
        "game_keys": "INSERT,SELECT,UPDATE",
        "games": "INSERT,SELECT,UPDATE",
        "grants": "INSERT,SELECT",
        "holds": "DELETE,INSERT,SELECT,UPDATE",
        "idempotency_keys": "DELETE,INSERT,SELECT,UPDATE",
        "inventories": "INSERT,SELECT,UPDATE",
        "item_ledger": "INSERT,SELECT",
        "ledger_entries": "INSERT,SELECT",
        "player_debts": "INSERT,SELECT,UPDATE",
        "player_item_counts": "INSERT,SELECT,UPDATE",
        "player_offer_counts": "INSERT,SELECT,UPDATE",
        "player_profiles": "INSERT,SELECT,UPDATE",
        "promo_code_budgets": "INSERT,SELECT,UPDATE",
        "promo_redemptions": "INSERT,SELECT,UPDATE",
        "purchases": "INSERT,SELECT,UPDATE",
        "receipts": "INSERT,SELECT,UPDATE",
        "risk_breakers": "INSERT,SELECT,UPDATE",
        "risk_events": "INSERT,SELECT",
        "risk_breaker_log": "INSERT,SELECT",
        "rate_limit_windows": "DELETE,INSERT,SELECT,UPDATE",
        "schema_functions": "SELECT",
        "schema_migrations": "SELECT",
        "steam_orders": "INSERT,SELECT",
        "stock_buckets": "INSERT,SELECT,UPDATE",
        "stock_levels": "INSERT,SELECT,UPDATE",
        "stock_restocks": "INSERT,SELECT",
        "store_accounts": "INSERT,SELECT,UPDATE",
        "studio_sessions": "DELETE,INSERT,SELECT,UPDATE",
        "wallets": "INSERT,SELECT,UPDATE",
        "webhook_deliveries": "INSERT,SELECT",
        "webhook_endpoints": "DELETE,INSERT,SELECT,UPDATE",
        "webhook_progress": "INSERT,SELECT,UPDATE",
        "webhook_resends": "DELETE,INSERT,SELECT",
    }


# Functions without an explicit EXECUTE for the app role (PUBLIC's default grant aside).
NOT_GRANTED = (
    "SELECT p.oid::regprocedure::text FROM pg_proc p"
    " WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'sk\\_%%'"
    "  AND NOT EXISTS (SELECT FROM aclexplode(p.proacl) a"
    "   WHERE a.grantee = %s::regrole AND a.privilege_type = 'EXECUTE')"
)


def test_every_money_function_is_granted_to_the_app_role(database_url: str) -> None:
    """Explicitly, and again after the function files are re-applied (they drop and re-create
    every function): 90_privileges.sql runs after them."""
    with psycopg.connect(database_url) as owner:
        assert owner.execute(NOT_GRANTED, (roles.APP_ROLE,)).fetchall() == []
        owner.execute("DELETE FROM schema_functions")  # as if a file had changed
        applied = db.apply_functions(owner)
        assert applied[-1] == "90_privileges.sql"
        assert owner.execute(NOT_GRANTED, (roles.APP_ROLE,)).fetchall() == []
        count = owner.execute("SELECT count(*) FROM pg_proc WHERE proname = 'sk_purchase'")
        assert count.fetchone() == (1,)
        owner.rollback()


def test_the_fixture_database_runs_each_unit_as_the_app_role(conn: psycopg.Connection) -> None:
    owner = conn.execute("SELECT current_user").fetchone()
    database = db.SingleConnectionDatabase(conn, role=roles.APP_ROLE)
    with database.connection() as unit:
        assert unit.execute("SELECT current_user").fetchone() == (roles.APP_ROLE,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), database.connection() as unit:
        unit.execute("DELETE FROM ledger_entries")
    assert conn.execute("SELECT current_user").fetchone() == owner


def test_the_live_server_connects_as_the_app_login(
    live_server: LiveServer, database_url: str
) -> None:
    """The live server migrated as the owner and serves as the app login: a grant (sk_grant
    writing the ledger) works, and its pool's connections are the app login's."""
    game = live_server.new_game()
    game.grant("privileged", "COINS", 250)
    with db.connect(database_url) as owner:
        balance = owner.execute(
            "SELECT balance FROM wallets WHERE game_id = %s AND player_id = 'privileged'",
            (game.id,),
        ).fetchone()
        users = owner.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        ).fetchall()
    assert balance == (250,)
    assert (APP_LOGIN,) in users


def test_print_grants_prints_a_script_that_runs(database_url: str) -> None:
    """The script an operator runs: it makes the group role and a login, and grants what
    migrate grants; run here by the owner in a transaction that is rolled back."""
    result = CliRunner().invoke(main, ["migrate", "--print-grants"])
    assert result.exit_code == 0, result.output
    script = result.output
    assert "CREATE ROLE shopkeep_app NOLOGIN" in script
    assert "CREATE ROLE shopkeep_server LOGIN PASSWORD 'change-me' IN ROLE shopkeep_app" in script
    assert "GRANT INSERT ON ledger_entries" in script
    # The login's name is the operator's choice: a fresh one here, so the script runs whole.
    probe = f"shopkeep_probe_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url) as owner:
        owner.execute(script.replace("ROLE shopkeep_server LOGIN", f"ROLE {probe} LOGIN"))
        member = owner.execute(
            "SELECT pg_has_role(%s, %s, 'MEMBER')", (probe, roles.APP_ROLE)
        ).fetchone()
        owner.rollback()
    assert member == (True,)


@pytest.mark.slow
def test_serve_on_the_embedded_postgresql_serves_as_its_app_login(tmp_path: Path) -> None:
    """Without SHOPKEEP_DATABASE_URL, `serve` migrates as the embedded cluster's superuser and
    its pool logs in as embedded.APP_LOGIN, a member of shopkeep_app that is no superuser."""
    with PrivateDatabase(prefix="shopkeep-roles-pg-") as cluster:
        assert cluster.data_dir is not None
        store = StoreServer(
            data_dir=cluster.data_dir,
            workers=1,
            env={"SHOPKEEP_DATABASE_URL": "", "SHOPKEEP_PURGE_INTERVAL": "0"},
            log_path=tmp_path / "server.log",
            ready_timeout=90,
        )
        with store:
            assert httpx.get(f"{store.url}/readyz", timeout=10).status_code == 200
            with psycopg.connect(cluster.url, autocommit=True) as admin:
                logins = admin.execute(
                    "SELECT DISTINCT a.usename, r.rolsuper,"
                    " pg_has_role(a.usename, %s, 'MEMBER')"
                    " FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename"
                    " WHERE a.datname = 'shopkeep' AND a.pid <> pg_backend_pid()",
                    (roles.APP_ROLE,),
                ).fetchall()
    assert logins == [(APP_LOGIN_EMBEDDED, False, True)], logins
