"""Purchases and the purge at size, and what the shared rate limit costs, in one run.

``python -m loadtests.scale_bench [--ledger-rows 1000000] [--purchases 200000]
[--keys 500000] [--duration 10] [--connections 16] [--workers 2] [--players 200] [--out DIR]``

The issue's target size is ``--ledger-rows 10000000 --purchases 2000000 --keys 5000000``
(tens of minutes and about 15 GB of disk here: a documented command, not CI).

On one private PostgreSQL (``SHOPKEEP_DATABASE_URL`` if set, else an embedded one made and
deleted for the run), against a fresh store:

1. ``POST /v1/purchases`` of a common item, closed loop (bench.py's case and generator), three
   times with the server restarted in between: no rate limit, the shared rate limit
   (``SHOPKEEP_RATE_LIMIT_SCOPE=shared``) and the per-process one, both at a rate no run
   reaches, so what is measured is the counting, not refusals;
2. the fill, timed: ``--ledger-rows`` ledger entries (ten per filler wallet), ``--purchases``
   purchases and ``--keys`` idempotency keys with a stored body the size of a real purchase's,
   each one ``INSERT ... SELECT`` over ``generate_series``, then ``VACUUM ANALYZE``. Of the keys,
   40% expired yesterday (their day's partition), 1% expired a month ago (no partition: the
   default one) and the rest live, expiring over the next 24 hours (today's and tomorrow's);
3. the same purchase at that size, and its ratio to the fresh store's;
4. the purge, timed by step: the drop of yesterday's partition and the batched delete of the
   default partition's keys, with each step's keys per second;

and, between 1 and 2, the rate limiter's check alone in this process (one thread, per scope,
with a pooled ``SELECT 1`` beside it): its wall time and its CPU here and in PostgreSQL.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg

from shopkeep_server.auth import Principal
from shopkeep_server.config import Config
from shopkeep_server.db import PooledDatabase
from shopkeep_server.launcher import PrivateDatabase
from shopkeep_server.runtime.rate_limit import rate_limiter

from .bench import COMMON_PURCHASE, Result, cases, machine, measure, store_cpu_ms
from .common import COMMON_ITEMS, CURRENCY
from .seed import create_and_seed
from .stack import PrivateStore, process_tree, signals_raise

# A rate every run stays below: the limiter counts every request and refuses none.
UNREACHED_RATE = "1000000/second"
EXPIRED_SHARE = 0.40  # of the keys: expired yesterday, in yesterday's partition
DEFAULT_SHARE = 0.01  # expired a month ago, in the default partition
ENTRIES_PER_WALLET = 10
PURGE_BATCH = 10_000


class ScaleStore(PrivateStore):
    """A server on a database this run started itself (kept across server restarts), its
    PostgreSQL's processes counted as the database's CPU."""

    def __init__(self, database: PrivateDatabase | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owned_database = database

    def database_processes(self) -> list[psutil.Process]:
        pid = None if self._owned_database is None else self._owned_database.postmaster_pid()
        return [] if pid is None else process_tree(pid)


@dataclasses.dataclass
class CheckCost:
    """What one rate-limit check costs, measured in this process against the database."""

    scope: str
    wall_ms: float
    python_cpu_ms: float
    database_cpu_ms: float


def limiter_cost(url: str, database: PrivateDatabase | None, checks: int = 5000) -> list[CheckCost]:
    """The rate limiter's check alone, one thread, 200 accounts in turn, for each scope (and a
    `SELECT 1` on a pooled connection, the floor of any statement): a steadier figure than the
    difference of two HTTP runs on a busy machine."""
    config = Config(database_url=url, pool_min=1, pool_max=2)
    pool = PooledDatabase(config, url, open_wait=True)
    principals = [Principal("scale-bench", f"p-{n:05d}", "player") for n in range(200)]

    def database_cpu() -> float:
        pid = None if database is None else database.postmaster_pid()
        total = 0.0
        for process in [] if pid is None else process_tree(pid):
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def select_one(_: Principal) -> None:
        with pool.connection() as conn:
            conn.execute("SELECT 1").fetchone()

    costs = []
    try:
        for scope in ("process", "shared", "SELECT 1"):
            check = (
                select_one
                if scope == "SELECT 1"
                else rate_limiter(UNREACHED_RATE, scope, pool).check
            )
            for n in range(500):  # warm: connections, prepared statements
                check(principals[n % len(principals)])
            cpu, wall, db_cpu = time.process_time(), time.perf_counter(), database_cpu()
            for n in range(checks):
                check(principals[n % len(principals)])
            costs.append(
                CheckCost(
                    scope,
                    (time.perf_counter() - wall) * 1000 / checks,
                    (time.process_time() - cpu) * 1000 / checks,
                    (database_cpu() - db_cpu) * 1000 / checks,
                )
            )
    finally:
        pool.close()
    return costs


@dataclasses.dataclass
class Step:
    """A timed step of the fill or the purge."""

    name: str
    rows: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def timed(conn: psycopg.Connection, name: str, statement: str, params: Any = None) -> Step:
    started = time.perf_counter()
    cur = conn.execute(statement, params)
    return Step(name, cur.rowcount, time.perf_counter() - started)


def fill(
    conn: psycopg.Connection, game: str, *, ledger_rows: int, purchases: int, keys: int
) -> list[Step]:
    """The filler rows, in the bench game under players of their own ('fill-...'), so the
    tables and indexes the purchases write to are this big."""
    wallets = max(1, ledger_rows // ENTRIES_PER_WALLET)
    body_row = conn.execute(
        "SELECT response_body FROM idempotency_keys WHERE game_id = %s AND status = 201"
        " AND response_body LIKE '{\"purchase\"%%' LIMIT 1",
        (game,),
    ).fetchone()
    expired = int(keys * EXPIRED_SHARE)
    in_default = int(keys * DEFAULT_SHARE)
    values: dict[str, Any] = {
        "game": game,
        "currency": CURRENCY,
        "price": COMMON_ITEMS["potion"],
        "wallets": wallets,
        "entries": wallets * ENTRIES_PER_WALLET,
        "purchases": purchases,
        "body": body_row[0] if body_row else "{}",
    }
    # Yesterday's partition, as it would be had the store run yesterday.
    row = conn.execute(
        "SELECT format('CREATE TABLE IF NOT EXISTS %I PARTITION OF idempotency_keys"
        " FOR VALUES FROM (%L) TO (%L)', sk_idempotency_partition_name(d), sk_ts(d),"
        " sk_ts(d + interval '1 day')), d FROM (SELECT date_trunc('day', now() AT TIME ZONE"
        " 'UTC') AT TIME ZONE 'UTC' - interval '1 day' AS d) AS yesterday",
        prepare=False,
    ).fetchone()
    assert row is not None
    conn.execute(row[0])
    values["yesterday"] = row[1]

    def player(per: int) -> str:
        # The filler player of row n: `per` rows each.
        return f"'fill-' || lpad(((n - 1) / {max(1, per)})::text, 9, '0')"

    steps = [
        timed(
            conn,
            "wallets",
            "INSERT INTO wallets (game_id, player_id, currency, balance)"
            f" SELECT %(game)s, {player(1)}, %(currency)s, {100 * ENTRIES_PER_WALLET}"
            " FROM generate_series(1, %(wallets)s) n",
            values,
        ),
        timed(
            conn,
            "ledger entries",
            "INSERT INTO ledger_entries (game_id, player_id, currency, delta, balance_after,"
            " kind, reference, created_at)"
            f" SELECT %(game)s, {player(ENTRIES_PER_WALLET)}, %(currency)s, 100,"
            f" 100 * ((n - 1) %% {ENTRIES_PER_WALLET} + 1), 'grant', 'fill-' || n,"
            " now() - interval '1 second' * (%(entries)s - n)"
            " FROM generate_series(1, %(entries)s) n",
            values,
        ),
        timed(
            conn,
            "purchases",
            "INSERT INTO purchases (id, game_id, player_id, sku, quantity, currency, unit_price,"
            " total_price, catalog_version, status, granted, idempotency_key, created_at)"
            f" SELECT gen_random_uuid(), %(game)s, {player(purchases // wallets)}, 'potion', 1,"
            " %(currency)s, %(price)s, %(price)s, 1, 'completed', '{\"potion\": 1}',"
            " 'fill-' || n, now() - interval '1 second' * (%(purchases)s - n)"
            " FROM generate_series(1, %(purchases)s) n",
            values,
        ),
    ]
    for name, label, count, expires in [
        (
            "keys expired yesterday (its partition)",
            "e",
            expired,
            "%(yesterday)s + interval '86399 seconds' * n / %(count)s",
        ),
        (
            "keys expired a month ago (default partition)",
            "d",
            in_default,
            "now() - interval '30 days' - interval '1 second' * n",
        ),
        (
            "live keys (today's and tomorrow's partitions)",
            "l",
            keys - expired - in_default,
            "now() + interval '86399 seconds' * n / %(count)s",
        ),
    ]:
        if count == 0:
            continue
        steps.append(
            timed(
                conn,
                name,
                "INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, status,"
                f" response_body, created_at, expires_at) SELECT %(game)s, {player(10)},"
                f" 'fill-{label}-' || n, md5(n::text), 201, %(body)s, now() - interval '1 day',"
                f" {expires} FROM generate_series(1, %(count)s) n",
                {**values, "count": count},
            )
        )
    started = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    steps.append(Step("VACUUM ANALYZE", 0, time.perf_counter() - started))
    return steps


def purge(conn: psycopg.Connection) -> list[Step]:
    """The purge the janitor runs, timed by step, as its functions do it."""
    started = time.perf_counter()
    row = conn.execute("SELECT partitions, keys FROM sk_idempotency_drop_partitions()").fetchone()
    dropped = Step(
        f"drop the days that are over ({row[0] if row else 0} partition)",
        int(row[1]) if row else 0,
        time.perf_counter() - started,
    )
    started = time.perf_counter()
    deleted = 0
    while True:
        batch = conn.execute("SELECT sk_idempotency_purge_default(%s)", (PURGE_BATCH,)).fetchone()
        count = int(batch[0]) if batch else 0
        deleted += count
        if count < PURGE_BATCH:
            break
    batched = Step(
        f"delete the default partition's expired keys ({PURGE_BATCH} a batch)",
        deleted,
        time.perf_counter() - started,
    )
    return [dropped, batched]


def sizes(conn: psycopg.Connection, game: str) -> dict[str, int]:
    """Rows of the tables a purchase writes to (estimates after VACUUM ANALYZE: exact enough)."""
    rows = conn.execute(
        "SELECT relname, greatest(reltuples, 0)::bigint FROM pg_class WHERE relname IN"
        " ('ledger_entries', 'purchases', 'wallets')"
    ).fetchall()
    found = {name: int(count) for name, count in rows}
    keys = conn.execute(
        "SELECT sum(greatest(c.reltuples, 0))::bigint FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'idempotency_keys'::regclass"
    ).fetchone()
    found["idempotency_keys"] = int(keys[0]) if keys and keys[0] is not None else 0
    return found


def render(
    runs: dict[str, Result],
    check_costs: list[CheckCost],
    fill_steps: list[Step],
    purge_steps: list[Step],
    info: dict[str, Any],
) -> str:
    m = info["machine"]
    lines = [
        f"Shopkeep scale bench: {info['workers']} server workers, {info['generator']},"
        f" {info['connections']} connections, {info['seconds']:g} s per case",
        f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, load average at"
        f" start {m['load_average'][0]}",
        "",
        f"{'POST /v1/purchases (common)':44} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'bad':>4} {'CPU ms/req':>10}",
    ]
    for name, result in runs.items():
        lines.append(
            f"{name:44} {result.rps:7.0f} {result.p50_ms:7.1f} {result.p99_ms:7.1f}"
            f" {result.bad:4d} {store_cpu_ms(result):10.2f}"
        )
    fresh, full = runs.get("fresh store, no rate limit"), runs.get("at size, no rate limit")
    if fresh and full:
        lines.append(
            f"at size / fresh: req/s {full.rps / fresh.rps:.2f},"
            f" p99 {full.p99_ms / fresh.p99_ms:.2f}"
        )
    shared = runs.get("fresh store, shared rate limit")
    process = runs.get("fresh store, per-process rate limit")
    if fresh and shared and process:
        lines.append(
            "rate limit: CPU ms/req shared - none ="
            f" {store_cpu_ms(shared) - store_cpu_ms(fresh):+.2f},"
            f" per process - none = {store_cpu_ms(process) - store_cpu_ms(fresh):+.2f};"
            f" req/s shared / none {shared.rps / fresh.rps:.2f}"
        )
    lines += [
        "",
        f"{'rate limit check, in process, one thread':44} {'wall ms':>7} {'py CPU':>7}"
        f" {'db CPU':>7}",
    ]
    lines += [
        f"{c.scope:44} {c.wall_ms:7.3f} {c.python_cpu_ms:7.3f} {c.database_cpu_ms:7.3f}"
        for c in check_costs
    ]
    lines += ["", f"{'fill':52} {'rows':>10} {'seconds':>8} {'rows/s':>9}"]
    lines += [f"{s.name:52} {s.rows:10d} {s.seconds:8.1f} {s.per_second:9.0f}" for s in fill_steps]
    lines.append("size: " + ", ".join(f"{name} {count:,}" for name, count in info["sizes"].items()))
    lines += ["", f"{'purge':52} {'keys':>10} {'seconds':>8} {'keys/s':>9}"]
    lines += [f"{s.name:52} {s.rows:10d} {s.seconds:8.2f} {s.per_second:9.0f}" for s in purge_steps]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.scale_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ledger-rows", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=500_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--players", type=int, default=200, help="wallets the purchases rotate")
    parser.add_argument("--out", type=Path, default=None, help="where scale.json goes")
    args = parser.parse_args(argv)
    generator = "wrk" if shutil.which("wrk") else "locust"
    out: Path = args.out or Path("out") / f"scale-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "machine": machine(),
        "workers": args.workers,
        "generator": generator,
        "connections": args.connections,
        "seconds": args.duration,
        "target": {"ledger_rows": args.ledger_rows, "purchases": args.purchases, "keys": args.keys},
    }
    external = os.environ.get("SHOPKEEP_DATABASE_URL")
    database = None if external else PrivateDatabase(prefix="shopkeep-scale-").start()
    url = external or (database.url if database else "")
    try:
        with signals_raise(), tempfile.TemporaryDirectory(prefix="shopkeep-scale-") as tmp:
            runs, check_costs, fill_steps, purge_steps = _run(
                args, database, url, generator, Path(tmp), info, out
            )
    except KeyboardInterrupt:
        print("\ninterrupted: the store and its database were stopped", file=sys.stderr)
        return 130
    finally:
        if database is not None:
            database.stop()
    text = render(runs, check_costs, fill_steps, purge_steps, info)
    (out / "scale.txt").write_text(text + "\n")
    (out / "scale.json").write_text(
        json.dumps(
            {
                **info,
                "runs": {name: dataclasses.asdict(r) for name, r in runs.items()},
                "rate_limit_checks": [dataclasses.asdict(c) for c in check_costs],
                "fill": [dataclasses.asdict(s) for s in fill_steps],
                "purge": [dataclasses.asdict(s) for s in purge_steps],
            },
            indent=1,
            default=str,
        )
    )
    print(text)
    return 0


def _run(
    args: argparse.Namespace,
    database: PrivateDatabase | None,
    url: str,
    generator: str,
    work: Path,
    info: dict[str, Any],
    out: Path,
) -> tuple[dict[str, Result], list[CheckCost], list[Step], list[Step]]:
    game = f"scale{uuid.uuid4().hex[:10]}"
    purchase = next(c for c in cases("") if c.name == COMMON_PURCHASE)
    runs: dict[str, Result] = {}
    tokens: list[str] = []

    def run(name: str, env: dict[str, str]) -> None:
        store = ScaleStore(database, workers=args.workers, log_dir=out, env=env, database_url=url)
        with store:
            if not tokens:
                made = create_and_seed(
                    store.cli,
                    store.url,
                    game=game,
                    players=args.players,
                    stock=1,
                    start_coins=1_000_000_000,
                    ttl=6 * 3600,
                )
                tokens.extend(token for _, token in made.roster)
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            measure(
                store, purchase, tokens, generator=generator, seconds=2,
                connections=args.connections, work=work,
            )  # fmt: skip
            runs[name] = measure(
                store, purchase, tokens, generator=generator, seconds=args.duration,
                connections=args.connections, work=work,
            )  # fmt: skip

    run("fresh store, no rate limit", {})
    run("fresh store, shared rate limit", {"SHOPKEEP_RATE_LIMIT": UNREACHED_RATE})
    run(
        "fresh store, per-process rate limit",
        {"SHOPKEEP_RATE_LIMIT": UNREACHED_RATE, "SHOPKEEP_RATE_LIMIT_SCOPE": "process"},
    )
    print("measuring the rate limiter's check ...", file=sys.stderr, flush=True)
    check_costs = limiter_cost(url, database)
    print("filling ...", file=sys.stderr, flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        fill_steps = fill(
            conn, game, ledger_rows=args.ledger_rows, purchases=args.purchases, keys=args.keys
        )
        info["sizes"] = sizes(conn, game)
    run("at size, no rate limit", {})
    print("purging ...", file=sys.stderr, flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        purge_steps = purge(conn)
    return runs, check_costs, fill_steps, purge_steps


if __name__ == "__main__":
    sys.exit(main())
