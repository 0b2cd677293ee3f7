"""`shopkeep-server` as a user runs it: serve --demo on the embedded PostgreSQL, and the tools."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

import shopkeep
from sample_game.__main__ import build_parser as demo_parser
from shopkeep import catalog_cli
from shopkeep_server import __version__, cli, db
from shopkeep_server.config import VARIABLES
from shopkeep_server.launcher import StoreServer
from shopkeep_server.store import players
from shopkeep_server.store.audit import audit
from shopkeep_server.store.idempotency import IdempotencyKey
from support import ROOT, LiveServer, buy, drop_database, free_port, grant, make_game
from support.events import position_everything

CLI = str(Path(sys.executable).parent / "shopkeep-server")
pytestmark = pytest.mark.slow


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


class DemoServer:
    """`shopkeep-server serve --demo` with no SHOPKEEP_DATABASE_URL: the README's first step."""

    def __init__(self, data_dir: Path) -> None:
        self.store = StoreServer(data_dir=data_dir, demo=True, command=[CLI], ready_timeout=120)
        self.store.start()
        self.url = self.store.url
        self.output = self.store.log

    def token(self, role: str) -> str:
        label = {"player": "Player token", "service": "Service token", "studio": "Studio token"}
        match = re.search(rf"{label[role]}[^\n]*\n\s+(\S+)", self.output)
        assert match, self.output
        return match.group(1)

    def stop(self) -> None:
        self.store.stop(grace=30)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="shopkeep-cli-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_serve_demo_buys_with_printed_token_and_data_survives(data_dir: Path) -> None:
    server = DemoServer(data_dir)
    try:
        assert "Demo game 'demo' created." in server.output
        player = server.token("player")
        response = httpx.post(
            f"{server.url}/v1/purchases",
            json={"sku": "potion"},
            headers={"Authorization": f"Bearer {player}", "Idempotency-Key": f"{uuid.uuid4()}"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["purchase"]["price"] == {"currency": "COINS", "amount": 50}
        # The printed curl line, pasted into a shell that has curl and Python (no uuidgen).
        assert "uuidgen" not in server.output
        curl_line = server.output.split("Buy a potion:\n", 1)[1].splitlines()[0].strip()
        pasted = subprocess.run(
            ["bash", "-c", curl_line], capture_output=True, text=True, timeout=60, check=False
        )
        assert pasted.returncode == 0, pasted.stderr
        assert json.loads(pasted.stdout)["purchase"]["price"] == {"currency": "COINS", "amount": 50}
        catalog = httpx.get(
            f"{server.url}/v1/catalog", headers={"Authorization": f"Bearer {player}"}
        ).json()
        # The demo's dozen items and the welcome chest its new players alone see.
        assert len(catalog["items"]) == 13
        assert "welcome_chest" in [item["sku"] for item in catalog["items"]]
    finally:
        server.stop()
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()

    again = DemoServer(data_dir)
    try:
        assert "Demo game 'demo' already there." in again.output
        # Started again within the minute: its drops are current, no new catalog version.
        assert "moved forward" not in server.output + again.output
        wallet = httpx.get(
            f"{again.url}/v1/wallet", headers={"Authorization": f"Bearer {again.token('player')}"}
        ).json()
        assert wallet["balances"][0] == {"currency": "COINS", "amount": 900}
        versions = httpx.get(
            f"{again.url}/v1/admin/catalog/versions",
            headers={"Authorization": f"Bearer {again.token('studio')}"},
        ).json()["versions"]
        assert [v["version"] for v in versions] == [1]
    finally:
        again.stop()


def test_game_create_and_token(live_server: LiveServer) -> None:
    env = {"SHOPKEEP_DATABASE_URL": live_server.database_url}
    game_id = f"cli-{uuid.uuid4().hex[:8]}"
    created = run_cli("game", "create", game_id, env=env)
    assert created.returncode == 0, created.stderr
    assert f"game: {game_id}" in created.stdout
    assert re.search(r"^secret: \S{32,}$", created.stdout, re.M)
    duplicate = run_cli("game", "create", game_id, env=env)
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr

    token = run_cli("token", "--game", game_id, "--role", "player", "--sub", "p1", env=env)
    assert token.returncode == 0, token.stderr
    assert token.stdout.count("\n") == 1 and token.stdout.count(".") == 2
    wallet = httpx.get(
        f"{live_server.url}/v1/wallet",
        headers={"Authorization": f"Bearer {token.stdout.strip()}"},
    )
    assert wallet.status_code == 200
    assert wallet.json() == {"balances": []}  # no catalog published yet

    bad_role = run_cli("token", "--game", game_id, "--role", "king", "--sub", "p1", env=env)
    assert bad_role.returncode == 2
    bad_sub = run_cli("token", "--game", game_id, "--role", "player", "--sub", "a b", env=env)
    assert bad_sub.returncode == 2
    assert bad_sub.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--sub': must match ^[A-Za-z0-9_.:@-]{1,128}$"
    )
    unknown = run_cli("token", "--game", "no-such-game", "--role", "player", "--sub", "p1", env=env)
    assert unknown.returncode == 1
    assert unknown.stderr == (
        "Error: game no-such-game does not exist;"
        " create it with `shopkeep-server game create no-such-game`\n"
    )
    assert unknown.stdout == ""


def test_migrate_purge_and_audit(database_url: str) -> None:
    name = f"shopkeep_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)
    env = {"SHOPKEEP_DATABASE_URL": url}
    try:
        first = run_cli("migrate", env=env)
        assert first.returncode == 0
        assert first.stdout.strip() == "applied: 0001_schema.sql, 0002_money.sql" + "".join(
            f", {p.name}"
            for p in sorted((ROOT / "server/shopkeep_server/migrations").glob("*.sql"))
            if p.name not in ("0001_schema.sql", "0002_money.sql")
        )
        assert run_cli("migrate", env=env).stdout.strip() == "up to date"

        with db.connect(url) as conn:
            game = make_game(conn)
            key = IdempotencyKey("k" * 16, "f", "r", 86400, 1000)
            players.grant(
                conn,
                game.id,
                "p1",
                actor="backend",
                currency="COINS",
                amount=500,
                reason="x",
                key=key,
            )
            buy = IdempotencyKey("b" * 16, "f", "r", 86400, 1000)
            assert (
                players.purchase(conn, game.id, "p1", sku="potion", quantity=2, key=buy).status
                == 201
            )
        passed = run_cli("audit", env=env)
        assert passed.returncode == 0, passed.stdout
        assert passed.stdout.startswith("audit passed")

        purge = run_cli("purge-idempotency", env=env)
        assert purge.stdout.strip() == "purged 0 expired idempotency keys"
        with db.connect(url) as conn:
            conn.execute(
                "INSERT INTO events (game_id, type, created_at, data)"
                " VALUES (%s, 'stock.restocked', now() - interval '50 hours', '{}')",
                (game.id,),
            )
            position_everything(conn)
        # Two days ago: a day without a partition of its own, so the default partition's
        # purge takes it, to the second (the day partitions go by whole days).
        kept = run_cli("purge-events", env={**env, "SHOPKEEP_EVENT_RETENTION": "187200"})
        assert kept.stdout.strip() == "purged 0 events past their retention"
        purged = run_cli("purge-events", env={**env, "SHOPKEEP_EVENT_RETENTION": "172800"})
        assert purged.stdout.strip() == "purged 1 events past their retention"

        with db.connect(url) as conn:
            conn.execute("UPDATE wallets SET balance = balance - 1 WHERE currency = 'COINS'")
        failed = run_cli("audit", env=env)
        assert failed.returncode == 1
        assert failed.stdout.splitlines()[0] == "AUDIT FAILED: 1 violation(s)"
        assert (
            f"wallet {game.id}/p1/COINS: balance 399 COINS but ledger sums to 400 COINS"
            in failed.stdout
        )
    finally:
        drop_database(database_url, name)


def test_audit_lines_print_money_as_people_read_it(client, conn, game) -> None:  # type: ignore[no-untyped-def]
    grant(client, game, "p1", "USD", 300)
    bought = buy(client, game, "tip")
    assert bought.status_code == 201, bought.get_json()
    purchase_id = bought.get_json()["purchase"]["id"]
    assert [v for v in audit(conn) if game.id in v] == []
    conn.execute(
        "UPDATE wallets SET balance = balance - 1 WHERE game_id = %s AND currency = 'USD'",
        (game.id,),
    )
    conn.execute(
        "UPDATE purchases SET unit_price = unit_price + 25, total_price = total_price + 25"
        " WHERE game_id = %s",
        (game.id,),
    )
    # The ledger is append-only (a trigger refuses updates); this transaction, rolled back,
    # turns triggers off to play the tamperer.
    conn.execute("SET LOCAL session_replication_role = replica")
    entry = conn.execute(
        "UPDATE ledger_entries SET balance_after = balance_after + 1"
        " WHERE game_id = %s AND kind = 'purchase' RETURNING id",
        (game.id,),
    ).fetchone()
    assert entry is not None
    assert sorted(v for v in audit(conn) if game.id in v) == [
        "each ledger row's balance_after follows from the one before:"
        f" ledger {game.id}/p1/USD entry {entry[0]}: balance_after 0.0151 USD (151)"
        " but running sum is 0.0150 USD (150)",
        "every purchase paid exactly its price (and a refund returned it):"
        f" purchase {purchase_id} ({game.id}/p1): charged 0.0175 USD (175),"
        " ledger shows 0.0150 USD (150); refunded 0.0000 USD (0)",
        f"wallet balance equals the sum of its ledger deltas: wallet {game.id}/p1/USD:"
        " balance 0.0149 USD (149) but ledger sums to 0.0150 USD (150)",
    ]


def _commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path) or "(main)", command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


@pytest.mark.parametrize("group", [cli.main, catalog_cli.main], ids=["shopkeep-server", "shopkeep"])
def test_every_command_and_option_explains_itself(group: click.Group) -> None:
    for path, command in _commands(group):
        assert command.help, path
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{path} {param.opts}"


def test_every_command_line_has_a_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert CliRunner().invoke(cli.main, ["--version"]).stdout == (
        f"shopkeep-server, version {__version__}\n"
    )
    assert CliRunner().invoke(catalog_cli.main, ["--version"]).stdout == (
        f"shopkeep, version {shopkeep.__version__}\n"
    )
    with pytest.raises(SystemExit) as exited:
        demo_parser().parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"shopkeep-demo {shopkeep.__version__}\n"
    for action in demo_parser()._actions:
        assert action.help, action.option_strings


def test_serve_help_names_every_variable_with_its_default() -> None:
    shown = CliRunner().invoke(cli.main, ["serve", "--help"])
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.split())  # as one line: the help wraps where it likes
    for name, (default, meaning) in VARIABLES.items():
        assert f"{name} {meaning} [default: {default}]" in text
    token_help = " ".join(CliRunner().invoke(cli.main, ["token", "--help"]).stdout.split())
    assert "SHOPKEEP_DATABASE_URL" in token_help and "SHOPKEEP_POOL_MAX" not in token_help
    rotate_help = CliRunner().invoke(cli.main, ["game", "keys", "rotate", "--help"]).stdout
    assert "[default: $SHOPKEEP_TOKEN_ISSUER, else shopkeep]" in " ".join(rotate_help.split())


def test_a_wrong_database_url_is_a_message_not_a_traceback() -> None:
    port = free_port()  # nothing listens there
    failed = run_cli(
        "migrate",
        env={
            "SHOPKEEP_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=5"
        },
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "Error: cannot connect to the database (SHOPKEEP_DATABASE_URL): "
    )
    assert "Traceback" not in failed.stderr
