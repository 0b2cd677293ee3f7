"""A multi-host rehearsal on one machine: app hosts behind HAProxy, one killed mid-stream.

Two (or more) ``shopkeep-server serve`` processes on their own ports stand for two hosts; HAProxy
(Debian's ``haproxy``) listens on 127.0.0.1 in front of them and health-checks each on
``/readyz``. With ``--pgbouncer`` the hosts reach PostgreSQL through PgBouncer (Debian's
``pgbouncer``) in transaction mode, as DESIGN.md promises; the servers migrate through it at
start and purge expired idempotency keys through it every second.

One purchase stream goes through HAProxy with the SDK's retries (the same idempotency key on
every re-send). Part-way through, one host's whole process group (gunicorn master and workers)
is killed with SIGKILL, as a host losing power would be. Then the rehearsal checks what a
player relies on:

- no purchase failed beyond the SDK's retries;
- every acknowledged purchase is in the database exactly once, with the id the player was told,
  and the store holds no purchase nobody was told about;
- no idempotency key has two effects;
- every wallet is its starting coins minus exactly what the player was told was charged;
- ``shopkeep-server audit`` passes.

It prints the figures (attempts, re-sends by cause, the seconds from the kill to the next
acknowledged purchase) and ends with ``RESULT: ...``; ``--summary`` writes them as JSON.
The test suite runs a short version (tests/loadtests/test_rehearsal.py)::

    python -m loadtests.rehearsal --purchases 300 --kill-after 100 [--pgbouncer]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from shopkeep import StoreClient
from shopkeep.errors import ShopkeepError
from shopkeep_server.launcher import (
    PrivateDatabase,
    Started,
    StoreServer,
    StoreStartError,
    free_port,
)

from .common import COMMON_ITEMS, CURRENCY, START_COINS
from .seed import create_and_seed
from .stack import signals_raise

HOST = "127.0.0.1"
# Debian puts the daemons in /usr/sbin, which a non-root PATH often lacks.
_SBIN = ("/usr/sbin", "/sbin")
# PgBouncer refuses to run as root; Debian's postgresql-common creates this user.
UNPRIVILEGED_USER = "postgres"


class RehearsalError(RuntimeError):
    """A part of the rehearsal could not be started."""


def find_tool(name: str, package: str) -> str:
    """The path of a daemon the rehearsal runs, or a RehearsalError saying what to install."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    if found is None:
        raise RehearsalError(f"{name} is not installed: apt-get install {package}")
    return found


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RehearsalError(f"{what} exited ({process.returncode}):\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise RehearsalError(f"{what} did not listen on {HOST}:{port} in 20 s:\n{_tail(log)}")


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class HAProxy(Started):
    """HAProxy on a free port of 127.0.0.1 in front of ``backends`` (ports of 127.0.0.1).

    Each backend is health-checked on ``GET /readyz`` every 250 ms and taken out after two
    failures. A request whose connection to a backend fails is sent to another one
    (``option redispatch``): nothing was delivered, so that is always safe. A request a backend
    dies in the middle of is *not* re-sent by HAProxy (it answers 502): that re-send is the
    client's, with the same idempotency key.
    """

    def __init__(self, backends: list[int], *, work_dir: Path) -> None:
        self.backends = backends
        self.work_dir = work_dir
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.config_path = work_dir / "haproxy.cfg"
        self.log_path = work_dir / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        """The configuration file's text."""
        servers = "\n".join(
            f"    server host{i} {HOST}:{port} check" for i, port in enumerate(self.backends, 1)
        )
        return f"""\
global
    maxconn 1000

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1
    default-server inter 250ms fall 2 rise 2

frontend store
    bind {HOST}:{self.port}
    default_backend hosts

backend hosts
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""

    def start(self) -> Self:
        binary = find_tool("haproxy", "haproxy")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        checked = subprocess.run(
            [binary, "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True
        )
        if checked.returncode != 0:
            raise RehearsalError(f"haproxy refused its configuration:\n{checked.stderr}")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        _wait_for_port(self.port, self.process, "haproxy", self.log_path)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        _stop_process(process)


class PgBouncer(Started):
    """PgBouncer in transaction mode on a free port of 127.0.0.1, in front of ``upstream_url``.

    It refuses to run as root, so when we are root it runs as Debian's ``postgres`` user.
    ``url`` is ``upstream_url`` with the host and port replaced by PgBouncer's."""

    def __init__(self, upstream_url: str, *, work_dir: Path, pool_size: int = 20) -> None:
        self.upstream = conninfo_to_dict(upstream_url)
        self.work_dir = work_dir
        self.pool_size = pool_size
        self.port = free_port()
        self.url = make_conninfo(upstream_url, host=HOST, port=str(self.port))
        self.config_path = work_dir / "pgbouncer.ini"
        self.log_path = work_dir / "pgbouncer.log"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        """The configuration file's text. ``auth_type = trust``: it listens on 127.0.0.1 only,
        and the upstream's password (if any) is in the auth file for the server logins."""
        upstream = self.upstream
        return f"""\
[databases]
* = host={upstream.get("host") or HOST} port={upstream.get("port") or 5432}

[pgbouncer]
listen_addr = {HOST}
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.work_dir / "userlist.txt"}
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = 500
logfile = {self.log_path}
pidfile = {self.work_dir / "pgbouncer.pid"}
"""

    def start(self) -> Self:
        binary = find_tool("pgbouncer", "pgbouncer")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        user = str(self.upstream.get("user") or "postgres")
        password = str(self.upstream.get("password") or "")
        (self.work_dir / "userlist.txt").write_text(f'"{user}" "{password}"\n')
        self.config_path.write_text(self.config())
        account = self._account()
        if account is not None:
            for path in (self.work_dir, *self.work_dir.iterdir()):
                os.chown(path, *account)
        self.process = subprocess.Popen(
            [binary, str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=None if account is None else account[0],
            group=None if account is None else account[1],
        )
        _wait_for_port(self.port, self.process, "pgbouncer", self.log_path)
        return self

    def _account(self) -> tuple[int, int] | None:
        """(uid, gid) to run as, or None to stay who we are. PgBouncer refuses to run as root:
        then it runs as the owner of the upstream's socket directory (the only user besides
        root that can reach a private one), or as Debian's ``postgres`` for a TCP upstream."""
        if os.geteuid() != 0:
            return None
        host = str(self.upstream.get("host") or "")
        if host.startswith("/"):
            owner = Path(host).stat()
            return owner.st_uid, owner.st_gid
        account = pwd.getpwnam(UNPRIVILEGED_USER)
        return account.pw_uid, account.pw_gid

    def stop(self) -> None:
        process, self.process = self.process, None
        _stop_process(process)


@dataclasses.dataclass(slots=True)
class Told:
    """One purchase as its player was told: the key sent, and the answer (None if it failed)."""

    player: str
    sku: str
    key: str
    purchase_id: str | None = None
    charged: int = 0
    acknowledged_at: float | None = None
    replayed: bool = False
    error: str | None = None


class AttemptLog:
    """Every HTTP attempt the SDK made (its ``on_request`` hook), counted by outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: collections.Counter[str] = collections.Counter()

    def __call__(
        self,
        _method: str,
        _path: str,
        status: int | None,
        _elapsed: float,
        error: ShopkeepError | None,
    ) -> None:
        label = str(status) if status is not None else f"no response ({type(error).__name__})"
        with self._lock:
            self.outcomes[label] += 1


@dataclasses.dataclass(slots=True)
class Stream:
    """What the purchase stream did."""

    told: list[Told]
    attempts: AttemptLog
    killed_at: float | None


def purchase_stream(
    url: str,
    roster: list[tuple[str, str]],
    *,
    purchases: int,
    threads: int,
    kill_after: int,
    kill: Any,
    seed: int,
    max_retries: int = 8,
) -> Stream:
    """``purchases`` purchases by random players over ``threads`` threads through ``url``;
    ``kill()`` is called once ``kill_after`` of them were acknowledged."""
    rng = random.Random(seed)
    skus = sorted(COMMON_ITEMS)
    plan = [
        Told(player=player, sku=rng.choice(skus), key=f"rehearsal-{uuid.uuid4()}")
        for player, _ in (rng.choice(roster) for _ in range(purchases))
    ]
    attempts = AttemptLog()
    tokens = dict(roster)
    clients = {
        player: StoreClient(
            url,
            tokens[player],
            timeout=10,
            max_retries=max_retries,
            backoff=0.2,
            max_backoff=2.0,
            on_request=attempts,
        )
        for player in {t.player for t in plan}
    }
    lock = threading.Lock()
    acknowledged = 0
    killed_at: float | None = None

    def buy(told: Told) -> None:
        nonlocal acknowledged, killed_at
        try:
            result = clients[told.player].purchase(told.sku, idempotency_key=told.key)
        except ShopkeepError as exc:
            told.error = f"{type(exc).__name__}: {exc}"
            return
        told.purchase_id = str(result.purchase.id)
        told.charged = result.purchase.price.amount
        told.replayed = result.replayed
        # Stamped under the lock that also orders the kill: exactly kill_after come before it.
        with lock:
            told.acknowledged_at = time.monotonic()
            acknowledged += 1
            if acknowledged == kill_after and killed_at is None:
                kill()
                killed_at = time.monotonic()

    try:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(buy, told) for told in plan]:
                future.result()
    finally:
        for client in clients.values():
            client.close()
    return Stream(plan, attempts, killed_at)


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One invariant and whether it held."""

    name: str
    ok: bool
    detail: str = ""


def check_store(
    database_url: str, game: str, stream: Stream, audit: subprocess.CompletedProcess[str]
) -> list[Check]:
    """The invariants, read from the database itself (not through the hosts)."""
    told = stream.told
    acknowledged = {t.key: t for t in told if t.purchase_id is not None}
    failed = [t for t in told if t.purchase_id is None]
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, id::text, player_id, total_price FROM purchases"
            " WHERE game_id = %s",
            (game,),
        ).fetchall()
        doubled = conn.execute(
            "SELECT player_id, idempotency_key, count(*) FROM purchases WHERE game_id = %s"
            " GROUP BY 1, 2 HAVING count(*) > 1",
            (game,),
        ).fetchall()
        balances: dict[str, int] = dict(
            conn.execute(
                "SELECT player_id, balance FROM wallets WHERE game_id = %s AND currency = %s",
                (game, CURRENCY),
            ).fetchall()
        )
    stored = collections.Counter(key for key, _, _, _ in rows)
    by_key = {key: (purchase_id, player) for key, purchase_id, player, _ in rows}
    missing = [k for k in acknowledged if stored[k] != 1]
    wrong = [
        k for k, t in acknowledged.items() if k in by_key and by_key[k] != (t.purchase_id, t.player)
    ]
    unannounced = [k for k in stored if k not in acknowledged]
    spent: collections.Counter[str] = collections.Counter()
    for t in acknowledged.values():
        spent[t.player] += t.charged
    wallets_off = {
        player: (balances.get(player), START_COINS - spent[player])
        for player in {t.player for t in told}
        if balances.get(player) != START_COINS - spent[player]
    }
    return [
        Check(
            "no purchase failed beyond the SDK's retries",
            not failed,
            "; ".join(sorted({t.error or "" for t in failed}))[:500],
        ),
        Check(
            "every acknowledged purchase is stored exactly once, with the id the player was told",
            not missing and not wrong,
            f"missing or doubled {missing[:5]}, other id {wrong[:5]}" if missing or wrong else "",
        ),
        Check(
            "the store holds no purchase nobody was told about",
            not unannounced,
            f"{unannounced[:5]}" if unannounced else "",
        ),
        Check("no idempotency key has two effects", not doubled, f"{doubled[:5]}"),
        Check(
            "every wallet is its starting coins minus what its player was told",
            not wallets_off,
            f"(balance, expected) {dict(list(wallets_off.items())[:5])}" if wallets_off else "",
        ),
        Check(
            "shopkeep-server audit",
            audit.returncode == 0,
            (audit.stdout + audit.stderr).strip()[-500:],
        ),
    ]


def kill_host(server: StoreServer) -> int:
    """SIGKILL ``server``'s whole process group (gunicorn's master and its workers), as a host
    losing power: no request it holds is answered. Returns the group's id."""
    process = server.process
    if process is None:
        raise RehearsalError("the host to kill is not running")
    os.killpg(process.pid, signal.SIGKILL)
    return process.pid


def run(args: argparse.Namespace) -> int:
    """Start everything, run the stream, kill a host, check; returns the exit code."""
    work = Path(tempfile.mkdtemp(prefix="shopkeep-rehearsal-"))
    # PgBouncer may run as another user: its directory must be reachable by it.
    work.chmod(0o755)
    try:
        with signals_raise(), contextlib.ExitStack() as stack:
            database = stack.enter_context(PrivateDatabase(prefix="shopkeep-rehearsal-pg-"))
            app_url = database.url
            env = {"SHOPKEEP_RATE_LIMIT": "none", "SHOPKEEP_PURGE_INTERVAL": "1"}
            if args.pgbouncer:
                bouncer = stack.enter_context(PgBouncer(database.url, work_dir=work / "pgbouncer"))
                app_url = bouncer.url
                env["SHOPKEEP_PREPARED_STATEMENTS"] = "off"
                env["SHOPKEEP_CATALOG_LISTEN"] = "off"
                print(f"PgBouncer (transaction mode) on {HOST}:{bouncer.port}", flush=True)
            hosts = [
                stack.enter_context(
                    StoreServer(
                        database_url=app_url,
                        workers=args.workers,
                        env=env,
                        log_path=work / f"host{i}.log",
                        own_process_group=True,
                    )
                )
                for i in range(1, args.hosts + 1)
            ]
            balancer = stack.enter_context(
                HAProxy([h.port for h in hosts], work_dir=work / "haproxy")
            )
            print(
                f"HAProxy on {balancer.url} in front of"
                f" {', '.join(h.url for h in hosts)} ({args.workers} workers each)",
                flush=True,
            )
            game = f"rh{uuid.uuid4().hex[:12]}"
            # The limited drop stays closed (it opens in a day): the stream buys consumables.
            seeded = create_and_seed(
                lambda *a: _cli(hosts[0], *a),
                balancer.url,
                game=game,
                players=args.players,
                stock=1,
            )
            expired = _plant_expired_keys(database.url, game, count=EXPIRED_KEYS)
            victim = hosts[-1]
            started = time.monotonic()
            stream = purchase_stream(
                balancer.url,
                seeded.roster,
                purchases=args.purchases,
                threads=args.threads,
                kill_after=args.kill_after,
                kill=lambda: print(f"killed host {victim.url} (group {kill_host(victim)})"),
                seed=args.random_seed,
            )
            elapsed = time.monotonic() - started
            if args.pgbouncer:
                purged = _cli(hosts[0], "purge-idempotency").stdout.strip()
                migrated = _cli(hosts[0], "migrate").stdout.strip()
                print(f"through PgBouncer: {purged}; migrate: {migrated}", flush=True)
            audit = hosts[0].cli("audit")
            checks = check_store(database.url, game, stream, audit)
            checks.append(_purged(database.url, game, expired))
            if stream.killed_at is None:
                checks.append(Check("a host was killed mid-stream", False, "never reached"))
            summary = _summary(args, stream, elapsed, checks)
            _print(summary)
            if args.summary:
                Path(args.summary).write_text(json.dumps(summary, indent=1))
            return 0 if summary["ok"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Keys already past their TTL, planted before the stream: the hosts' own purge (every second,
# one host at a time under the advisory lock) must delete them while the stream runs.
EXPIRED_KEYS = 50


def _plant_expired_keys(database_url: str, game: str, *, count: int) -> list[str]:
    keys = [f"expired-{uuid.uuid4()}" for _ in range(count)]
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, status,"
            " response_body, expires_at) VALUES (%s, 'rehearsal', %s, 'f', 201, '{}',"
            " now() - interval '1 day')",
            [(game, key) for key in keys],
        )
    return keys


def _purged(database_url: str, game: str, keys: list[str]) -> Check:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE game_id = %s AND key = ANY(%s)",
            (game, keys),
        ).fetchone()
    left = row[0] if row else -1
    return Check(
        f"the {len(keys)} expired keys planted before the stream were purged",
        left == 0,
        f"{left} left",
    )


def _cli(server: StoreServer, *args: str) -> subprocess.CompletedProcess[str]:
    done = server.cli(*args)
    if done.returncode != 0:
        raise RehearsalError(
            f"shopkeep-server {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        )
    return done


def _summary(
    args: argparse.Namespace, stream: Stream, elapsed: float, checks: list[Check]
) -> dict[str, Any]:
    told = stream.told
    acknowledged = [t for t in told if t.acknowledged_at is not None]
    killed_at = stream.killed_at
    after_kill = [
        t.acknowledged_at - killed_at
        for t in acknowledged
        if killed_at is not None and t.acknowledged_at is not None and t.acknowledged_at > killed_at
    ]
    outcomes = stream.attempts.outcomes
    resent = sum(n for label, n in outcomes.items() if not label.startswith("2"))
    return {
        "hosts": args.hosts,
        "workers_per_host": args.workers,
        "pgbouncer": args.pgbouncer,
        "purchases": len(told),
        "acknowledged": len(acknowledged),
        "failed": len(told) - len(acknowledged),
        "acknowledged_after_kill": len(after_kill),
        "answered_from_the_idempotency_record": sum(t.replayed for t in acknowledged),
        "seconds_from_kill_to_next_acknowledged": round(min(after_kill), 3) if after_kill else None,
        "attempts": sum(outcomes.values()),
        "attempts_by_outcome": dict(sorted(outcomes.items())),
        "attempts_resent": resent,
        "seconds": round(elapsed, 2),
        "checks": [dataclasses.asdict(c) for c in checks],
        "ok": all(c.ok for c in checks),
    }


def _print(summary: dict[str, Any]) -> None:
    print()
    print(
        f"{summary['purchases']} purchases through HAProxy over {summary['hosts']} hosts"
        f"{' and PgBouncer' if summary['pgbouncer'] else ''} in {summary['seconds']} s:"
        f" {summary['acknowledged']} acknowledged, {summary['failed']} failed,"
        f" {summary['acknowledged_after_kill']} after the kill,"
        f" {summary['answered_from_the_idempotency_record']} answered from the idempotency record"
    )
    print(
        f"attempts: {summary['attempts']} ({summary['attempts_resent']} not 2xx, re-sent or"
        f" final): {summary['attempts_by_outcome']}"
    )
    print(
        "seconds from the kill to the next acknowledged purchase:"
        f" {summary['seconds_from_kill_to_next_acknowledged']}"
    )
    for check in summary["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        detail = f" ({check['detail']})" if check["detail"] and not check["ok"] else ""
        print(f"  {mark} {check['name']}{detail}")
    failed = [c["name"] for c in summary["checks"] if not c["ok"]]
    print("RESULT: every invariant held" if not failed else f"RESULT: FAILED: {failed}")


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m loadtests.rehearsal``."""
    p = argparse.ArgumentParser(
        prog="python -m loadtests.rehearsal",
        description=(
            "Several shopkeep-server hosts behind HAProxy (and optionally PgBouncer in"
            " transaction mode) on 127.0.0.1; one purchase stream with the SDK's retries; one"
            " host killed with SIGKILL mid-stream; then the invariants and the audit."
        ),
    )
    p.add_argument("--hosts", type=int, default=2, help="app processes (default 2)")
    p.add_argument("--workers", type=int, default=1, help="gunicorn workers per host (default 1)")
    add_stream_options(p, purchases=400, victim="the last host")
    p.add_argument(
        "--pgbouncer",
        action="store_true",
        help="put PgBouncer (transaction mode) between the hosts and PostgreSQL",
    )
    p.add_argument("--random-seed", type=int, default=16, help="seed of the purchase plan")
    return p


def add_stream_options(p: argparse.ArgumentParser, *, purchases: int, victim: str) -> None:
    """The options every rehearsal shares: the purchase stream, when ``victim`` is killed, and
    where the summary goes."""
    p.add_argument("--players", type=int, default=20, help="players buying (default 20)")
    p.add_argument(
        "--purchases", type=int, default=purchases, help=f"purchases in all (default {purchases})"
    )
    p.add_argument("--threads", type=int, default=8, help="concurrent buyers (default 8)")
    p.add_argument(
        "--kill-after",
        type=int,
        default=150,
        help=f"kill {victim} once this many purchases were acknowledged (default 150)",
    )
    p.add_argument("--summary", help="also write the figures and checks to this JSON file")


def run_checked(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    rehearse: Callable[[argparse.Namespace], int],
    *,
    what: str,
) -> int:
    """Runs a rehearsal after the checks every one shares; a rehearsal that could not run
    (a missing daemon, a store that did not start) exits 2, apart from a failed check (1)."""
    if not 0 < args.kill_after < args.purchases:
        p.error("--kill-after must be between 1 and --purchases - 1")
    try:
        return rehearse(args)
    except (RehearsalError, StoreStartError, httpx.HTTPError) as exc:
        print(f"{what} failed to run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.hosts < 2:
        p.error("--hosts must be at least 2: one is killed")
    return run_checked(p, args, run, what="rehearsal")


if __name__ == "__main__":
    sys.exit(main())
