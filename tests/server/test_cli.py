"""`shopkeep-server` as a user runs it: serve --demo on the embedded PostgreSQL, and the tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from conftest import ROOT, LiveServer, free_port, make_game
from shopkeep_server import db
from shopkeep_server.store import players
from shopkeep_server.store.idempotency import IdempotencyKey

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
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "SHOPKEEP_DATABASE_URL"}
        env["SHOPKEEP_DATA_DIR"] = str(data_dir)
        self.process = subprocess.Popen(
            [CLI, "serve", "--demo", "--port", str(self.port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        self.output = ""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output += line
            if line.startswith("Shopkeep serving on"):
                break
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"demo server did not become ready:\n{self.output}")

    def token(self, role: str) -> str:
        label = {"player": "Player token", "service": "Service token", "studio": "Studio token"}
        match = re.search(rf"{label[role]}[^\n]*\n\s+(\S+)", self.output)
        assert match, self.output
        return match.group(1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


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
        catalog = httpx.get(
            f"{server.url}/v1/catalog", headers={"Authorization": f"Bearer {player}"}
        ).json()
        assert len(catalog["items"]) == 12
    finally:
        server.stop()
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()

    again = DemoServer(data_dir)
    try:
        assert "Demo game 'demo' already there." in again.output
        wallet = httpx.get(
            f"{again.url}/v1/wallet", headers={"Authorization": f"Bearer {again.token('player')}"}
        ).json()
        assert wallet["balances"][0] == {"currency": "COINS", "amount": 950}
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
    unknown = run_cli("token", "--game", "no-such-game", "--role", "player", "--sub", "p1", env=env)
    assert unknown.returncode == 1


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
            conn.execute("UPDATE wallets SET balance = balance - 1 WHERE currency = 'COINS'")
        failed = run_cli("audit", env=env)
        assert failed.returncode == 1
        assert failed.stdout.splitlines()[0] == "AUDIT FAILED: 1 violation(s)"
        assert f"wallet {game.id}/p1/COINS: balance 399 but ledger sums to 400" in failed.stdout
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
