"""Requests per second and latency per endpoint, against one private store, in one run.

``python -m loadtests.bench [--duration 10] [--connections 32] [--workers 2]
[--generator auto|wrk|locust] [--players 200] [--rebalance-tries 3] [--out DIR]
[--against DIR] [--against-env NAME=VALUE ...] [--rounds 3]``

Cases, each measured for ``--duration`` seconds after a short warm-up, closed loop (every
connection sends its next request when the answer arrives), as a ratio to ``/healthz``:

- ``GET /healthz``: the cost of an empty request in this stack (gunicorn, Flask, no database);
- ``GET /v1/catalog``: the live catalog, full body (a client's first fetch);
- ``GET /v1/catalog`` with ``If-None-Match``: the 304 a client with a cached catalog gets;
- ``GET /v1/catalog (personal)``: the same read once the catalog has offers for a segment
  (issue 15): each player's own prices are worked out per request in SQL over the shared,
  cached body, measured last (the catalog is published again with offers for it), beside
  the shared-cache read above;
- ``GET /v1/wallet``: one database read, players in rotation;
- ``POST /v1/purchases`` of a common item: the whole money path, a fresh key each time;
- ``POST /v1/purchases`` of a limited item (stock spread over buckets, enough to never sell
  out while measured): the money path plus the hot stock rows of a drop;
- ``sk_purchase`` called directly in SQL by ``pgbench`` with as many clients (when pgbench is
  installed): what the database alone does with the same purchase, the ceiling of the HTTP
  one;
- ``POST /v1/purchases`` paced at about half of the measured peak: each of ``--connections``
  x 2 connections waits between an answer and its next request so that together they send
  at that rate (wrk's ``delay()``; an approximation of an open loop, since a slow answer
  still delays the next request of its connection), for the p99 a player sees when the
  store is not saturated. The waits are drawn at random (exponentially distributed, so the
  requests arrive as independent players' would): with one fixed wait, every connection
  sent at the same moments, and the store met bursts of all of them at once.

Each server worker has a listening socket of its own (SO_REUSEPORT), so the kernel spreads the
connections over them. With one shared socket about one run in two had one worker serving
everything (half the capacity on two cores); should that happen again, the run is flagged and
measured again (``--rebalance-tries``), and the ratios count it.

The generator is ``wrk`` (compiled, with a Lua script for tokens, keys and bodies) when it is
installed (``apt-get install wrk``), else Locust's ``FastHttpUser`` in one process per core.
The table shows each side's CPU seconds during the measurement, and the rest of the machine's
(other processes), so a reader can see whether the store or the generator was the bottleneck
(a warning says so when the generator used most of a core), then the ratios the performance
goals are stated in.

With ``--against DIR`` (another source tree: ``git archive REV server loadtests | tar -x -C
DIR``) or ``--against-env NAME=VALUE`` (a setting, e.g. ``SHOPKEEP_THREADS=4``), or both, the
run is a comparison instead: two private stores, the other side's and this checkout's, each
HTTP case measured on both in turns for ``--rounds`` rounds (loadtests.paired), and the medians
of req/s and of CPU per request printed side by side with how many rounds each side won. The
same comparison one request at a time is ``loadtests.cpu_probe --against``; this one is under
load, where threads, locks and the interpreter's lock count too.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from .common import COMMON_ITEMS, CURRENCY, DROP_SKU, SEED_ENV, load_catalog
from .paired import (
    add_comparison_arguments,
    comparison_env,
    describe_other_side,
    order_of_round,
    paired,
)
from .seed import SeededGame, create_and_seed, plan, publish_catalog
from .stack import CpuMeter, PrivateStore, process_tree, signals_raise, stop_group

COMMON_PURCHASE = "POST /v1/purchases (common)"
LIMITED_PURCHASE = "POST /v1/purchases (limited)"
DIRECT_SQL = "sk_purchase in SQL (pgbench)"
PACED = "POST /v1/purchases (paced, 1/2 peak)"
PERSONAL_CATALOG = "GET /v1/catalog (personal)"
BENCH_DROP = "bench_drop"
BENCH_STOCK = 100_000_000
WARMUP_SECONDS = 2.0
BENCH_LOCUSTFILE = Path(__file__).with_name("bench_locustfile.py")


@dataclasses.dataclass(frozen=True)
class Case:
    """One measured request."""

    name: str
    method: str
    path: str
    player: bool = False  # carries a player token (rotated over the players)
    body: dict[str, Any] | None = None  # JSON body; POSTs get a fresh Idempotency-Key each
    etag: str | None = None  # If-None-Match
    rate: float | None = None  # paced: requests per second over all connections (else closed)
    sql: str | None = None  # a pgbench script run against the database instead of HTTP


@dataclasses.dataclass
class Result:
    """What one case measured."""

    case: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx/3xx answers and socket errors
    cpu: dict[str, float]  # CPU seconds by side during the measurement
    server_processes: list[float]  # CPU seconds of each busy server process, largest first
    one_worker_runs: int = 0  # earlier runs of this case discarded: one worker got everything


def bench_catalog() -> dict[str, Any]:
    """The load-test catalog, plus a limited item that can be bought again and again: the
    drop's code path (stock buckets) for as long as a benchmark runs."""
    content = load_catalog(time.time() - 3600, 1)
    drop = next(i for i in content["items"] if i["sku"] == DROP_SKU)
    content["items"].append(
        {
            **drop,
            "sku": BENCH_DROP,
            "kind": "consumable",
            "stock": BENCH_STOCK,
            "per_player_limit": None,
        }
    )
    return content


def bench_offers_catalog() -> dict[str, Any]:
    """The bench catalog with offers: a tenth off every common item for everyone, a fifth off
    for new players (a segment over first_seen), so every player's view is priced in SQL."""
    content = bench_catalog()
    content["segments"] = [{"id": "new_players", "rule": "first_seen within 7d"}]
    content["offers"] = [
        offer
        for sku in COMMON_ITEMS
        for offer in (
            {"id": f"sale-{sku}", "sku": sku, "discount_percent": 10},
            {"id": f"new-{sku}", "segment": "new_players", "sku": sku, "discount_percent": 20},
        )
    ]
    return content


def seed_bench_game(store: PrivateStore, *, players: int, name: str) -> tuple[str, SeededGame]:
    """A game of its own on ``store`` (``name`` and a random suffix), its players seeded with
    more coins than any run spends, and the bench catalog published."""
    game = f"{name}{uuid.uuid4().hex[:10]}"
    made = create_and_seed(
        store.cli,
        store.url,
        game=game,
        players=players,
        stock=1,
        start_coins=1_000_000_000,
        ttl=3600,
    )
    publish_catalog(store.url, made.studio_token, bench_catalog(), notes=name)
    return game, made


def cases(catalog_etag: str) -> list[Case]:
    """The measured requests, /healthz first (the others are compared with it)."""

    def buy(sku: str, price: int) -> dict[str, Any]:
        return {
            "sku": sku,
            "quantity": 1,
            "expected_price": {"currency": CURRENCY, "amount": price},
        }

    drop_price = next(
        i["prices"][0]["amount"] for i in bench_catalog()["items"] if i["sku"] == BENCH_DROP
    )
    healthz = Case("GET /healthz", "GET", "/healthz")
    return [
        healthz,
        Case("GET /v1/catalog", "GET", "/v1/catalog", player=True),
        Case("GET /v1/catalog (304)", "GET", "/v1/catalog", player=True, etag=catalog_etag),
        Case("GET /v1/wallet", "GET", "/v1/wallet", player=True),
        Case(
            COMMON_PURCHASE,
            "POST",
            "/v1/purchases",
            player=True,
            body=buy("potion", COMMON_ITEMS["potion"]),
        ),
        Case(
            LIMITED_PURCHASE,
            "POST",
            "/v1/purchases",
            player=True,
            body=buy(BENCH_DROP, drop_price),
        ),
        # Again at the end: how far two measurements of the same thing drift on this machine.
        dataclasses.replace(healthz, name="GET /healthz (again)"),
    ]


# ---------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------

_WRK_SCRIPT = """
-- Generated by loadtests/bench.py for one case.
local method = %(method)s
local path = %(path)s
local body = %(body)s
local etag = %(etag)s
local prefix = %(prefix)s
local tokens = {%(tokens)s}
local pause_ms = %(pause_ms)s
local counter = 0
local threads = 0

if pause_ms then
  -- An exponentially distributed wait of mean pause_ms: the connections' requests arrive
  -- independently of each other (Poisson), not in step.
  delay = function()
    return -math.log(1 - math.random()) * pause_ms
  end
end

function setup(thread)
  -- Each thread has its own Lua state: tid keeps their idempotency keys apart.
  threads = threads + 1
  thread:set("tid", threads)
end

request = function()
  counter = counter + 1
  local headers = {}
  if #tokens > 0 then
    headers["Authorization"] = "Bearer " .. tokens[(counter %% #tokens) + 1]
  end
  if body then
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = string.format("%%s-%%d-%%d", prefix, tid, counter)
  end
  if etag then
    headers["If-None-Match"] = etag
  end
  return wrk.format(method, path, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, "
    .. "\\"p99_us\\": %%d, \\"bad\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _lua(value: str | None) -> str:
    return "nil" if value is None else json.dumps(value)  # JSON strings are Lua strings here


def wrk_script(
    case: Case, tokens: list[str], directory: Path, *, pause_ms: float | None = None
) -> Path:
    """Write the Lua script of ``case``; returns its path."""
    script = _WRK_SCRIPT % {
        "method": _lua(case.method),
        "path": _lua(case.path),
        "body": _lua(json.dumps(case.body) if case.body is not None else None),
        "etag": _lua(case.etag),
        "prefix": _lua(f"bench-{uuid.uuid4().hex[:12]}"),
        "tokens": ", ".join(_lua(t) for t in tokens) if case.player else "",
        "pause_ms": "nil" if pause_ms is None else str(round(pause_ms)),
    }
    path = directory / f"{uuid.uuid4().hex[:8]}.lua"
    path.write_text(script)
    return path


def wrk_command(
    url: str, case: Case, tokens: list[str], *, seconds: float, connections: int, work: Path
) -> list[str]:
    """The wrk command line of one run of ``case``."""
    pause_ms = connections * 1000 / case.rate if case.rate else None
    script = wrk_script(case, tokens, work, pause_ms=pause_ms)
    # One thread: wrk's event loop does tens of thousands of requests a second on a core,
    # and the store needs the other one.
    return [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip


def _finish_wrk(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    output, _ = process.communicate(timeout=120)
    for line in output.decode().splitlines():
        if line.startswith("BENCH_JSON "):
            figures: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return figures
    raise RuntimeError(f"wrk printed no figures:\n{output.decode()}")


# ---------------------------------------------------------------------------------------------
# The measurement
# ---------------------------------------------------------------------------------------------


def _busy_seconds() -> float:
    # Not sum(times): Linux counts guest time inside user time already.
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def measure(
    store: PrivateStore,
    case: Case,
    tokens: list[str],
    *,
    generator: str,
    seconds: float,
    connections: int,
    work: Path,
) -> Result:
    """Warm up, then measure ``case`` for ``seconds`` with CPU accounting on every side."""
    holder: dict[str, list[psutil.Process]] = {"generator": []}
    if case.sql is not None:
        generator = "pgbench"
        pgbench_run(store, case, seconds=WARMUP_SECONDS, connections=connections, work=work)
    elif generator == "wrk":
        subprocess.run(
            wrk_command(store.url, case, tokens, seconds=WARMUP_SECONDS,
                        connections=connections, work=work),
            capture_output=True,
            timeout=120,
        )  # fmt: skip
    else:
        locust_warmup(store.url, case, seconds=WARMUP_SECONDS, connections=connections, work=work)
    meter = CpuMeter(
        {
            "generator": lambda: holder["generator"],
            "server": store.server_processes,
            "database": store.database_processes,
        }
    )
    busy_before = _busy_seconds()
    meter.start()
    if generator == "pgbench":
        figures = pgbench_run(
            store, case, seconds=seconds, connections=connections, work=work, holder=holder
        )
    elif generator == "wrk":
        command = wrk_command(
            store.url, case, tokens, seconds=seconds, connections=connections, work=work
        )
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        holder["generator"] = process_tree(process.pid)
        figures = _finish_wrk(process)
    else:
        figures = locust_measure(store.url, case, seconds, connections, work, holder)
    cpu = meter.stop()
    busy = _busy_seconds() - busy_before
    cpu["others"] = max(0.0, busy - sum(cpu.values()))
    # The gunicorn master idles; its workers are what the connections landed on.
    workers = [round(v, 1) for v in meter.per_process("server") if v >= 0.05]
    duration = figures["duration_us"] / 1e6
    return Result(
        case=case.name,
        requests=figures["requests"],
        seconds=duration,
        rps=figures["requests"] / duration if duration else 0.0,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        bad=figures["bad"],
        cpu={k: round(v, 2) for k, v in cpu.items()},
        server_processes=workers,
    )


# ---------------------------------------------------------------------------------------------
# pgbench: the same purchase, called in SQL
# ---------------------------------------------------------------------------------------------


def purchase_sql(game: str, players: list[str], sku: str, price: int) -> str:
    """A pgbench script buying ``sku`` for a random player with a fresh key: the statement the
    server sends for POST /v1/purchases (store/players.py), without HTTP."""
    roster = ", ".join("'" + p.replace("'", "''") + "'" for p in players)
    return (
        f"\\set n random(1, {len(players)})\n"
        f"SELECT status, body, replayed FROM sk_purchase('{game}', (ARRAY[{roster}])[:n],"
        " gen_random_uuid()::text, 'bench', 3600, 1000, 'bench', "
        f"'{sku}', 1, NULL, '{CURRENCY}', {price});\n"
    )


def pgbench_run(
    store: PrivateStore,
    case: Case,
    *,
    seconds: float,
    connections: int,
    work: Path,
    holder: dict[str, list[psutil.Process]] | None = None,
) -> dict[str, Any]:
    """One pgbench run of ``case.sql`` with ``connections`` clients; figures in wrk's terms
    (latencies from pgbench's per-transaction log)."""
    assert case.sql is not None
    run = work / f"pgbench-{uuid.uuid4().hex[:8]}"
    run.mkdir()
    script = run / "purchase.sql"
    script.write_text(case.sql)
    command = [
        "pgbench", "-n", "-M", "prepared", "-c", str(connections), "-j", "1",
        "-T", str(max(1, round(seconds))), "-f", str(script), "--log",
        f"--log-prefix={run / 'tx'}", store.database_url,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if holder is not None:
        holder["generator"] = process_tree(process.pid)
    output, _ = process.communicate(timeout=seconds + 120)
    if process.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{output.decode()}")
    latencies: list[int] = []
    failed = 0
    for log_file in run.glob("tx*"):
        for line in log_file.read_text().splitlines():
            fields = line.split()
            if fields[2].isdigit():
                latencies.append(int(fields[2]))
            else:  # "failed" or "skipped"
                failed += 1
    latencies.sort()

    def percentile(q: float) -> int:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0

    return {
        "requests": len(latencies),
        "duration_us": int(max(1, round(seconds)) * 1e6),
        "p50_us": percentile(0.50),
        "p99_us": percentile(0.99),
        "bad": failed,
    }


# ---------------------------------------------------------------------------------------------
# Locust, when wrk is not installed
# ---------------------------------------------------------------------------------------------


def _locust_command(
    url: str, case: Case, seconds: float, connections: int, work: Path
) -> tuple[list[str], dict[str, str], Path]:
    prefix = work / f"locust-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "locust", "-f", str(BENCH_LOCUSTFILE), "--headless",
        "--host", url, "-u", str(connections), "-r", str(connections),
        "-t", f"{max(1, round(seconds))}s", "--csv", str(prefix), "--only-summary",
        "--processes", str(max(2, os.cpu_count() or 2)), "--exit-code-on-error", "0",
    ]  # fmt: skip
    env = {
        **os.environ,
        SEED_ENV: str(work / "seed.json"),
        "SHOPKEEP_BENCH_CASE": json.dumps(dataclasses.asdict(case)),
    }
    return command, env, prefix


def locust_warmup(url: str, case: Case, *, seconds: float, connections: int, work: Path) -> None:
    """A warm-up with Locust (figures unused)."""
    command, env, _ = _locust_command(url, case, seconds, connections, work)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        process.wait(seconds + 60)
    finally:
        stop_group(process)


def locust_measure(
    url: str,
    case: Case,
    seconds: float,
    connections: int,
    work: Path,
    holder: dict[str, list[psutil.Process]],
) -> dict[str, Any]:
    """One measured Locust run; its figures in wrk's terms."""
    command, env, prefix = _locust_command(url, case, seconds, connections, work)
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        while process.poll() is None:
            holder["generator"] = process_tree(process.pid) or holder["generator"]
            time.sleep(0.3)
    finally:
        stop_group(process)
    elapsed = time.monotonic() - started
    with Path(f"{prefix}_stats.csv").open(newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    requests = int(row["Request Count"])
    rps = float(row["Requests/s"])
    return {
        "requests": requests,
        "duration_us": int(requests / rps * 1e6) if rps else int(elapsed * 1e6),
        "p50_us": float(row["50%"]) * 1000,
        "p99_us": float(row["99%"]) * 1000,
        "bad": int(row["Failure Count"]),
    }


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = platform.processor() or "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def store_cpu_ms(result: Result) -> float:
    """CPU milliseconds the store (server and database) spent per request: unlike req/s, it
    does not depend on how the connections spread over the workers, nor on idle cores."""
    spent = result.cpu["server"] + result.cpu["database"]
    return spent * 1000 / result.requests if result.requests else 0.0


def one_worker(result: Result) -> bool:
    """Whether one server process did nearly all the work (the connections all landed on it)."""
    busy = result.server_processes
    return len(busy) >= 1 and busy[0] > 0.8 * sum(busy) and result.cpu["server"] > 1


def render(results: list[Result], info: dict[str, Any]) -> str:
    """The benchmark's table."""
    m = info["machine"]
    base = results[0]
    lines = [
        f"Shopkeep bench: {info['workers']} server workers (gunicorn gthread, {info['threads']}"
        f" threads each), {info['database']}; generator {info['generator']},"
        f" {info['connections']} connections, {info['seconds']:g} s per case",
        f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM,"
        f" load average at start {m['load_average'][0]}",
        "",
        f"{'case':<30}{'req/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'bad':>4}{'rps/hz':>8}"
        f"{'CPU ms/req':>11}{'cost/hz':>8}   CPU s: gen / server (per worker) / db / others"
        " (gen share)",
    ]
    base_cost = store_cpu_ms(base)
    for r in results:
        c = r.cpu
        ours = c["generator"] + c["server"] + c["database"]
        share = c["generator"] / ours if ours else 0.0
        cost = store_cpu_ms(r)
        lines.append(
            f"{r.case:<30}{r.rps:>7.0f}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}{r.bad:>4}"
            f"{r.rps / base.rps if base.rps else 0:>8.2f}{cost:>11.2f}"
            f"{cost / base_cost if base_cost else 0:>8.1f}"
            f"   {c['generator']:.1f} / {c['server']:.1f}"
            f" ({' + '.join(f'{w:.1f}' for w in r.server_processes)}) / {c['database']:.1f} /"
            f" {c['others']:.1f} ({share:.0%})"
            + ("  <- one worker" if one_worker(r) else "")
            + (f"  [{r.one_worker_runs} one-worker run(s) before]" if r.one_worker_runs else "")
        )
    lines += [
        "rps/hz: req/s against GET /healthz (the cost of an empty request). CPU ms/req: server"
        " + database CPU per request; cost/hz: that against /healthz's, the figure that does",
        "not depend on how connections spread over the workers ('<- one worker': they all"
        " landed on one, which caps req/s at one core; such a run is measured again, up to",
        "--rebalance-tries times, and the count shown). 'others': CPU the rest of the machine"
        f" used meanwhile (noise); each case had {m['nproc'] * info['seconds']:g} CPU seconds.",
    ]
    for r in results:
        # wrk and pgbench run one thread: near a whole core, they set the pace.
        if r.cpu["generator"] >= 0.8 * r.seconds:
            lines.append(
                f"WARNING: {r.case}: the generator used {r.cpu['generator'] / r.seconds:.0%} of"
                " a core; it, not the store, may have been the bottleneck."
            )
    lines += ["", *ratios(results, info)]
    return "\n".join(lines)


def ratios(results: list[Result], info: dict[str, Any]) -> list[str]:
    """The performance goals' figures (issue 17), from this one run."""
    by = {r.case: r for r in results}
    hz = by["GET /healthz"].rps

    def ratio(a: str, b: str | None = None) -> str:
        if a not in by or (b is not None and b not in by):
            return "n/a"
        base = by[b].rps if b is not None else hz
        return f"{by[a].rps / base:.2f}" if base else "n/a"

    paced = by.get(PACED)
    one_worker_runs = info.get("one_worker_runs", 0) + sum(one_worker(r) for r in results)
    return [
        "ratios (this run)                          figure   goal",
        f"purchase / direct-SQL purchase           {ratio(COMMON_PURCHASE, DIRECT_SQL):>7}  >= 0.6",
        f"purchase / GET /healthz                  {ratio(COMMON_PURCHASE):>7}  >= 0.5",
        f"purchases per second                     {by[COMMON_PURCHASE].rps:>7.0f}  >= 1500",
        "direct-SQL purchases per second          "
        + (f"{by[DIRECT_SQL].rps:>7.0f}" if DIRECT_SQL in by else f"{'n/a':>7}")
        + "  >= 3000",
        f"GET /v1/catalog / GET /healthz           {ratio('GET /v1/catalog'):>7}  >= 0.9",
        f"catalog 304 / GET /healthz               {ratio('GET /v1/catalog (304)'):>7}  >= 0.95",
        f"personal catalog / shared catalog        {ratio(PERSONAL_CATALOG, 'GET /v1/catalog'):>7}"
        "  (shown)",
        f"wallet / GET /healthz                    {ratio('GET /v1/wallet'):>7}  >= 0.7",
        f"limited / common purchase                {ratio(LIMITED_PURCHASE, COMMON_PURCHASE):>7}"
        "  >= 0.9",
        "purchase p99 at 1/2 peak, paced (ms)     "
        + (f"{paced.p99_ms:>7.1f}  <= 25 ({paced.rps:.0f} req/s sent)" if paced else "    n/a"),
        f"runs where one worker served everything  {one_worker_runs:>7}  none",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run every case against one private store and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--generator", choices=["auto", "wrk", "locust"], default="auto")
    parser.add_argument("--players", type=int, default=200, help="wallets the requests rotate")
    parser.add_argument("--out", type=Path, default=None, help="where bench.json goes")
    parser.add_argument(
        "--rebalance-tries",
        type=int,
        default=3,
        help="measure a case again (at most this often) when one worker got every connection",
    )
    add_comparison_arguments(parser, rounds=3)
    args = parser.parse_args(argv)
    other_env = comparison_env(parser, args)
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "locust"
    if generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk)")
    out: Path = args.out or Path("out") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"machine": machine()}
    with signals_raise(), tempfile.TemporaryDirectory(prefix="shopkeep-bench-") as tmp:
        work = Path(tmp)
        if other_env is not None:
            try:
                text = _compare(args, generator, work, out, other_env)
            except KeyboardInterrupt:
                print("\ninterrupted: the stores and their databases were stopped", file=sys.stderr)
                return 130
            (out / "compare.txt").write_text(text + "\n")
            print(text)
            return 0
        try:
            with PrivateStore(workers=args.workers, log_dir=out) as store:
                results = _run_cases(store, args, generator, work, info)
        except KeyboardInterrupt:
            print("\ninterrupted: the store and its database were stopped", file=sys.stderr)
            return 130
    text = render(results, info)
    (out / "bench.txt").write_text(text + "\n")
    (out / "bench.json").write_text(
        json.dumps({**info, "results": [dataclasses.asdict(r) for r in results]}, indent=1)
    )
    print(text)
    return 0


def _prepare(
    store: PrivateStore, args: argparse.Namespace, generator: str, work: Path
) -> tuple[str, SeededGame, list[str], str]:
    """Seeds the store's game, writes the Locust generator's seed file into ``work``, and warms
    the store up; returns the game, what was seeded, the player tokens and the catalog's
    ETag."""
    game, made = seed_bench_game(store, players=args.players, name="bench")
    player_tokens = [t for _, t in made.roster]
    # The Locust generator reads tokens from a seed file like the load test's.
    plan(
        host=store.url,
        game=game,
        service_token=made.service_token,
        studio_token=made.studio_token,
        roster=made.roster,
        stock=1,
        start_in=0,
        baseline_seconds=0,
        duration=3600,
        client_timeout=10,
        start_coins=1_000_000_000,
    ).save(work / "seed.json")
    etag = httpx.get(
        f"{store.url}/v1/catalog", headers={"Authorization": f"Bearer {player_tokens[0]}"}
    ).headers["ETag"]
    # The first measurement must not pay for cold caches, plans and connection pools.
    for case in cases(etag)[1:-1]:
        measure(
            store,
            case,
            player_tokens,
            generator=generator,
            seconds=1,
            connections=args.connections,
            work=work,
        )
    return game, made, player_tokens, etag


def _run_cases(
    store: PrivateStore,
    args: argparse.Namespace,
    generator: str,
    work: Path,
    info: dict[str, Any],
) -> list[Result]:
    game, made, player_tokens, etag = _prepare(store, args, generator, work)
    version = "wrk " + _wrk_version() if generator == "wrk" else "Locust FastHttpUser"
    info.update(
        workers=args.workers,
        threads=int(store.env().get("SHOPKEEP_THREADS", "8")),
        database="external PostgreSQL" if not store.embedded else "embedded PostgreSQL",
        generator=version,
        connections=args.connections,
        seconds=args.duration,
    )
    http_cases = cases(etag)
    common = next(c for c in http_cases if c.name == COMMON_PURCHASE)
    assert common.body is not None
    planned: list[Case | None] = [*http_cases[:-1]]
    if shutil.which("pgbench") and store.database_url:
        planned.append(
            Case(
                DIRECT_SQL,
                "SQL",
                "sk_purchase",
                sql=purchase_sql(
                    game,
                    [player for player, _ in made.roster],
                    common.body["sku"],
                    common.body["expected_price"]["amount"],
                ),
            )
        )
    else:
        print("pgbench is not installed: no direct-SQL case", file=sys.stderr)
    # None: the paced case, once the peak is known; then the personal catalog read, once the
    # catalog has offers (published just before it is measured).
    planned += [None, Case(PERSONAL_CATALOG, "GET", "/v1/catalog", player=True), http_cases[-1]]
    results: list[Result] = []
    for planned_case in planned:
        connections = args.connections
        if planned_case is None:
            peak = next(r.rps for r in results if r.case == COMMON_PURCHASE)
            case = dataclasses.replace(common, name=PACED, rate=peak / 2)
            connections = args.connections * 2
        else:
            case = planned_case
        if case.name == PERSONAL_CATALOG:
            publish_catalog(store.url, made.studio_token, bench_offers_catalog(), notes="offers")
        print(f"measuring {case.name} ...", file=sys.stderr, flush=True)
        discarded = 0
        while True:
            result = measure(
                store,
                case,
                player_tokens,
                generator=generator,
                seconds=args.duration,
                connections=connections,
                work=work,
            )
            # One worker serving everything (the connections all landed on it) is worth
            # knowing, and counted, but it is not the endpoint's cost: measure again, a
            # bounded number of times, and say so.
            if args.workers < 2 or not one_worker(result) or discarded >= args.rebalance_tries:
                break
            discarded += 1
            info["one_worker_runs"] = info.get("one_worker_runs", 0) + 1
        result.one_worker_runs = discarded
        results.append(result)
    return results


def _compare(
    args: argparse.Namespace, generator: str, work: Path, out: Path, other_env: dict[str, str]
) -> str:
    """The HTTP cases on two stores, the other side's and this checkout's, in turns."""
    with contextlib.ExitStack() as stack:
        sides: dict[str, tuple[PrivateStore, list[str], list[Case], Path]] = {}
        for side, env in (("against", other_env), ("this", {})):
            store = stack.enter_context(
                PrivateStore(workers=args.workers, log_dir=out / side, env=env)
            )
            side_work = work / side  # the Locust generator's seed file is each store's own
            side_work.mkdir()
            _, _, tokens, etag = _prepare(store, args, generator, side_work)
            # Without /healthz again: the table compares two sides, not a drift over the run.
            sides[side] = (store, tokens, cases(etag)[:-1], side_work)
        runs: dict[tuple[str, str], list[Result]] = collections.defaultdict(list)
        loads = []
        for round_number in range(args.rounds):
            for index in range(len(sides["this"][2])):
                for side in order_of_round(round_number + index):
                    store, tokens, own_cases, side_work = sides[side]
                    case = own_cases[index]  # each side's own (the 304's ETag is its store's)
                    print(
                        f"round {round_number + 1}: {case.name} ({side}) ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    runs[(side, case.name)].append(
                        measure(
                            store,
                            case,
                            tokens,
                            generator=generator,
                            seconds=args.duration,
                            connections=args.connections,
                            work=side_work,
                        )
                    )
            loads.append(os.getloadavg()[0])
    other = describe_other_side(args.against, args.against_env)
    lines = [
        f"Shopkeep bench, paired: {other} against this checkout; {args.workers} server workers"
        f" each, {generator}, {args.connections} connections, {args.duration:g} s per case,"
        f" {args.rounds} rounds in turns, load average {min(loads):.1f} to {max(loads):.1f};"
        " medians of the rounds",
        "",
        f"{'case':30} {'req/s then':>10} {'now':>6} {'CPU ms then':>11} {'now':>6}"
        f" {'change':>7}  {'lower CPU':>9}  one-worker runs",
    ]
    for case in sides["this"][2]:
        then, now = runs[("against", case.name)], runs[("this", case.name)]
        rps = paired([r.rps for r in then], [r.rps for r in now])
        cpu = paired([store_cpu_ms(r) for r in then], [store_cpu_ms(r) for r in now])
        lines.append(
            f"{case.name:30} {rps.then:10.0f} {rps.now:6.0f} {cpu.then:11.2f} {cpu.now:6.2f}"
            f" {cpu.change:+6.1f}%  {cpu.lower:>3} of {cpu.rounds:<3}"
            f"  {sum(map(one_worker, then))} / {sum(map(one_worker, now))}"
        )
    lines.append(
        "CPU ms: server + database per request; lower CPU: rounds in which this checkout's was"
        " the lower; one-worker runs (then / now): runs in which one worker got every"
        " connection, kept here (each side had the same chance of one)."
    )
    return "\n".join(lines)


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    words = (done.stdout + done.stderr).split()
    return words[1] if len(words) > 1 else "?"


if __name__ == "__main__":
    sys.exit(main())
