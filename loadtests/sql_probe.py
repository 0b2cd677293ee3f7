"""The database's CPU per purchase, called directly in SQL, one purchase at a time.

``python -m loadtests.sql_probe [--purchases 2000] [--players 200]``

Starts a private store (embedded PostgreSQL), seeds it like :mod:`loadtests.bench`, then calls
``sk_purchase`` (the statement the server sends for ``POST /v1/purchases``, through
:func:`loadtests.bench.purchase_sql`'s arguments) on one connection, a fresh key each time, for
a common item and for the limited one, and divides the CPU time of that connection's backend
(``/proc/<pid>/stat``) by the purchases. No HTTP, no other client, no background process
counted: the money path's own cost in PostgreSQL, the figure a change to ``server/.../sql/`` is
judged by. The wall time per purchase includes the commit's flush to disk.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from .bench import BENCH_DROP, bench_catalog, seed_bench_game
from .common import COMMON_ITEMS, CURRENCY
from .stack import PrivateStore

_CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))
PURCHASE = (
    "SELECT status FROM sk_purchase(%s, %s, %s, 'probe', 3600, 1000, 'probe', %s, 1, NULL, %s, %s)"
)


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (the backend serving a connection)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def probe(url: str, game: str, players: list[str], sku: str, price: int, count: int) -> str:
    """One case's line: backend CPU and wall time per purchase, after a warm-up."""
    with psycopg.connect(url, autocommit=True) as conn:
        (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (0,)

        def buy() -> None:
            row = conn.execute(
                PURCHASE, (game, random.choice(players), uuid.uuid4().hex, sku, CURRENCY, price)
            ).fetchone()
            if row is None or row[0] != 201:
                raise RuntimeError(f"a probe purchase of {sku} was refused: {row}")

        for _ in range(max(50, count // 10)):  # plans cached, caches warm
            buy()
        cpu_before, started = backend_cpu_seconds(pid), time.perf_counter()
        for _ in range(count):
            buy()
        cpu = backend_cpu_seconds(pid) - cpu_before
        wall = time.perf_counter() - started
    return f"{sku:14} {1000 * cpu / count:10.3f} {1000 * wall / count:9.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.sql_probe", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--purchases", type=int, default=2000, help="per case (default 2000)")
    parser.add_argument("--players", type=int, default=200, help="buyers, in rotation")
    args = parser.parse_args(argv)
    drop_price = next(
        i["prices"][0]["amount"] for i in bench_catalog()["items"] if i["sku"] == BENCH_DROP
    )
    with (
        tempfile.TemporaryDirectory(prefix="shopkeep-sql-probe-") as work,
        PrivateStore(workers=1, log_dir=Path(work)) as store,
    ):
        game, made = seed_bench_game(store, players=args.players, name="sqlprobe")
        players = [player for player, _ in made.roster]
        print(f"sk_purchase in SQL, one connection, {args.purchases} purchases per case")
        print(f"{'sku':14} {'CPU ms':>10} {'wall ms':>9}")
        for sku, price in (("potion", COMMON_ITEMS["potion"]), (BENCH_DROP, drop_price)):
            print(probe(store.database_url, game, players, sku, price, args.purchases), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
