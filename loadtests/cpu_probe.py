"""CPU per request, measured one request at a time: figures a busy machine does not move much.

``python -m loadtests.cpu_probe [--requests 1000] [--players 50] [--profile DIR]
[--against DIR [--rounds 6]]``

Starts a private store with one server worker (``shopkeep-server serve``, as in production),
seeds a game like :mod:`loadtests.bench`, then sends each case's requests one after another on
one kept-alive connection and divides the CPU time the server's processes and the database's
used meanwhile by the number of requests. Throughput and latency on a shared machine depend on
what else runs; the CPU a request costs hardly does, so this is how a change to the request
path is judged before the benchmark is run again on a quiet machine.

With ``--against DIR`` (a source tree of other code, e.g. ``git archive main server loadtests |
tar -x -C DIR``), that code and this one are each served by a private store and measured in
turns, ``--rounds`` times, each round running every case on both: the machine's changes from
one moment to the next then move both figures of a round alike, and the medians of the rounds
compare the two.

With ``--profile DIR``, ``py-spy`` (when installed) samples the worker during each case and
writes its collapsed stacks to ``DIR/<case>.txt``; the ten functions with the most samples (own
time, and the store's own functions with what they call) are printed under each case. The
samples are taken only while a thread holds the interpreter (``--gil``): Python's CPU, not
its waits.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from .bench import BENCH_DROP, bench_catalog, bench_offers_catalog, seed_bench_game
from .common import COMMON_ITEMS, CURRENCY
from .paired import (
    add_comparison_arguments,
    comparison_env,
    describe_other_side,
    order_of_round,
    paired,
)
from .seed import publish_catalog
from .stack import PrivateStore, process_tree

Request = tuple[str, str, dict[str, str], bytes | None]


def _cpu(processes: Callable[[], list[int]]) -> float:
    total = 0.0
    for pid in processes():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that ended meanwhile: its CPU is lost, a rounding error here
        total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


_CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))


def _run(host: str, port: int, requests: Callable[[int], Request], count: int) -> tuple[int, float]:
    """Sends ``count`` requests on one connection; returns the bad answers and seconds."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    bad = 0
    started = time.perf_counter()
    for index in range(count):
        method, path, headers, body = requests(index)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status >= 400:
            bad += 1
    elapsed = time.perf_counter() - started
    connection.close()
    return bad, elapsed


def _top(collapsed: Path, limit: int = 10) -> list[str]:
    """The functions with the most samples in py-spy's raw (collapsed) output: own, total."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        # One entry per function: "name (path/of/module.py)", its line numbers merged.
        frames = [
            re.sub(r":\d+\)$", ")", re.sub(r" \(.*/(site-packages|lib/python3[.0-9]*)/", " (", f))
            for f in stack.split(";")
        ]
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return ["(no samples)"]
    lines = [f"  {samples} samples; own time:"]
    lines += [f"    {100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(limit)]
    lines.append("  total time of the store's own functions (with what they call):")
    lines += [
        f"    {100 * n / samples:5.1f}%  {f}"
        for f, n in total.most_common()
        if "shopkeep_server/" in f
    ][: limit * 2]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per case")
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--profile", type=Path, help="py-spy's collapsed stacks go here")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument(
        "--functions",
        action="store_true",
        help="a pass more per case with track_functions = all: the SQL functions' time",
    )
    add_comparison_arguments(parser, rounds=6)
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if args.profile and not Path(py_spy).exists():
        parser.error("--profile needs py-spy (pip install py-spy)")
    other_env = comparison_env(parser, args)
    if other_env is not None:
        return _compare(args, other_env)
    with (
        tempfile.TemporaryDirectory(prefix="shopkeep-probe-") as work,
        PrivateStore(workers=1, log_dir=Path(work)) as store,
    ):
        return _probe(store, args, py_spy)


def _compare(args: argparse.Namespace, other_env: dict[str, str]) -> int:
    """The other side (the code of ``--against``, the settings of ``--against-env``) and this
    code, each served by a private store of its own, measured in turns (loadtests.paired)."""
    other = describe_other_side(args.against, args.against_env)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shopkeep-probe-")))
        stores = {
            "against": stack.enter_context(
                PrivateStore(workers=1, log_dir=work / "against", env=other_env)
            ),
            "this": stack.enter_context(PrivateStore(workers=1, log_dir=work / "this")),
        }
        sides = {}
        for side, store in stores.items():
            _, made = seed_bench_game(store, players=args.players, name="probe")
            cases = {
                name: make()
                for name, make in _cases(store, [token for _, token in made.roster])
                if "personal" not in name and (not args.only or args.only in name)
            }
            sides[side] = (store, cases, _workers(store))
        figures: dict[tuple[str, str], list[tuple[float, float]]] = collections.defaultdict(list)
        for store, cases, _ in sides.values():
            for requests in cases.values():
                _run(*_host_port(store), requests, max(50, args.requests // 5))  # warm-up
        loads = []
        for round_number in range(args.rounds):
            for name in sides["this"][1]:
                for side in order_of_round(round_number):
                    store, cases, workers = sides[side]
                    server_before, db_before = _spent(store, workers)
                    _run(*_host_port(store), cases[name], args.requests)
                    server_after, db_after = _spent(store, workers)
                    per = 1000 / args.requests
                    figures[(side, name)].append(
                        ((server_after - server_before) * per, (db_after - db_before) * per)
                    )
            loads.append(os.getloadavg()[0])
    print(
        f"CPU per request, one request at a time, 1 worker each: {other} against this code,"
        f" {args.rounds} rounds of {args.requests} per case and side, load average"
        f" {min(loads):.1f} to {max(loads):.1f}; medians of the rounds, ms"
    )
    print(f"{'case':30} {'server then':>11} {'now':>7} {'change':>7} {'db then':>8} {'now':>7}")
    for name in sides["this"][1]:
        then = figures[("against", name)]
        now = figures[("this", name)]
        server = paired([f[0] for f in then], [f[0] for f in now])
        database = paired([f[1] for f in then], [f[1] for f in now])
        print(
            f"{name:30} {server.then:11.3f} {server.now:7.3f} {server.change:+6.1f}%"
            f" {database.then:8.3f} {database.now:7.3f}"
            f"   (lower in {server.lower} of {server.rounds} rounds)"
        )
    print("server ms of each round, then / now:")
    for name in sides["this"][1]:
        rounds = zip(figures[("against", name)], figures[("this", name)], strict=True)
        print(f"  {name:30} " + " ".join(f"{t[0]:.2f}/{n[0]:.2f}" for t, n in rounds))
    return 0


Case = tuple[str, Callable[[], Callable[[int], Request]]]


def _cases(store: PrivateStore, tokens: list[str]) -> list[Case]:
    """The measured requests on ``store``, each a maker of its requests by index (the personal
    catalog's last: they need the catalog with offers published first)."""

    def auth(index: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[index % len(tokens)]}"}

    def catalog_etag() -> str:
        return httpx.get(f"{store.url}/v1/catalog", headers=auth(0)).headers["ETag"]

    def purchase(sku: str, amount: int) -> Callable[[int], Request]:
        body = json.dumps(
            {
                "sku": sku,
                "quantity": 1,
                "expected_price": {"currency": CURRENCY, "amount": amount},
            }
        ).encode()

        def make(index: int) -> Request:
            headers = {
                **auth(index),
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            return "POST", "/v1/purchases", headers, body

        return make

    drop_price = next(
        i["prices"][0]["amount"] for i in bench_catalog()["items"] if i["sku"] == BENCH_DROP
    )
    shared_etag = catalog_etag()
    return [
        ("GET /healthz", lambda: lambda i: ("GET", "/healthz", {}, None)),
        ("GET /v1/catalog", lambda: lambda i: ("GET", "/v1/catalog", auth(i), None)),
        (
            "GET /v1/catalog (304)",
            lambda: (
                lambda i: (
                    "GET",
                    "/v1/catalog",
                    {**auth(i), "If-None-Match": shared_etag},
                    None,
                )
            ),
        ),
        ("GET /v1/wallet", lambda: lambda i: ("GET", "/v1/wallet", auth(i), None)),
        ("POST /v1/purchases (common)", lambda: purchase("potion", COMMON_ITEMS["potion"])),
        ("POST /v1/purchases (limited)", lambda: purchase(BENCH_DROP, drop_price)),
        ("GET /v1/catalog (personal)", lambda: lambda i: ("GET", "/v1/catalog", auth(i), None)),
        ("GET /v1/catalog (personal, 304)", lambda: _personal_304(store.url, auth, len(tokens))),
    ]


def _host_port(store: PrivateStore) -> tuple[str, int]:
    host, port = store.url.removeprefix("http://").split(":")
    return host, int(port)


def _spent(store: PrivateStore, workers: list[int]) -> tuple[float, float]:
    """CPU seconds so far of the server's workers and of the database's processes."""
    return _cpu(lambda: workers), _cpu(lambda: [p.pid for p in store.database_processes()])


def _workers(store: PrivateStore) -> list[int]:
    server = store.process
    assert server is not None
    return [p.pid for p in process_tree(server.pid) if p.pid != server.pid]


def _probe(store: PrivateStore, args: argparse.Namespace, py_spy: str) -> int:
    _, made = seed_bench_game(store, players=args.players, name="probe")
    tokens = [token for _, token in made.roster]
    cases = _cases(store, tokens)
    host, port = _host_port(store)
    workers = _workers(store)

    def database() -> list[int]:
        return [p.pid for p in store.database_processes()]

    print(f"CPU per request, one request at a time, {args.requests} per case, 1 worker")
    print(f"{'case':34} {'server ms':>9} {'db ms':>7} {'total':>7} {'wall ms':>8} {'bad':>4}")
    offers_published = False
    for name, make in cases:
        if "personal" in name and not offers_published:
            publish_catalog(store.url, made.studio_token, bench_offers_catalog(), notes="offers")
            offers_published = True
        if args.only and args.only not in name:
            continue
        requests = make()
        _run(host, port, requests, max(50, args.requests // 5))  # warm-up
        server_before, db_before = _cpu(lambda: workers), _cpu(database)
        bad, seconds = _run(host, port, requests, args.requests)
        server_cpu = _cpu(lambda: workers) - server_before
        db_cpu = _cpu(database) - db_before
        per = 1000 / args.requests
        print(
            f"{name:34} {server_cpu * per:9.3f} {db_cpu * per:7.3f}"
            f" {(server_cpu + db_cpu) * per:7.3f} {seconds * per:8.3f} {bad:4}",
            flush=True,
        )
        if args.profile:
            # A pass of its own: the sampler's CPU is not counted in the figures above.
            args.profile.mkdir(parents=True, exist_ok=True)
            out = args.profile / (re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ".txt")
            spy = subprocess.Popen(
                [
                    *(py_spy, "record", "--gil", "-r", "400", "--format", "raw"),
                    *("-o", str(out), "--nonblocking", "-p", str(workers[0])),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
            _run(host, port, requests, args.requests)
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            print("\n".join(_top(out)), flush=True)
        if args.functions:
            print("\n".join(_functions(store.database_url, host, port, requests, args)))
    return 0


def _functions(
    url: str, host: str, port: int, requests: Callable[[int], Request], args: argparse.Namespace
) -> list[str]:
    """The case again with PostgreSQL timing every function call (track_functions = all, a
    cost of its own, so not during the measured pass): microseconds per request, by function,
    its own statements (self) and with the functions it calls (total)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET track_functions = 'all'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        conn.execute("SELECT pg_stat_reset()")
        _run(host, port, requests, args.requests)
        conn.execute("ALTER SYSTEM RESET track_functions")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(11)  # an idle backend reports its counts after 10 s (PGSTAT_IDLE_INTERVAL)
        rows = conn.execute(
            "SELECT funcname, calls, self_time, total_time FROM pg_stat_user_functions"
            " ORDER BY total_time DESC LIMIT 15"
        ).fetchall()
    per = 1000 / args.requests  # ms -> µs per request
    lines = [f"  {'SQL function':34} {'calls/req':>9} {'self µs':>8} {'total µs':>9}"]
    lines += [
        f"  {name:34} {calls / args.requests:9.2f} {own * per:8.0f} {total * per:9.0f}"
        for name, calls, own, total in rows
    ]
    return lines


def _personal_304(
    url: str, auth: Callable[[int], dict[str, str]], players: int
) -> Callable[[int], Request]:
    """Each player's request with the ETag of its own view."""
    etags = [
        httpx.get(f"{url}/v1/catalog", headers=auth(i)).headers["ETag"] for i in range(players)
    ]

    def make(index: int) -> Request:
        return "GET", "/v1/catalog", {**auth(index), "If-None-Match": etags[index % players]}, None

    return make


if __name__ == "__main__":
    sys.exit(main())
