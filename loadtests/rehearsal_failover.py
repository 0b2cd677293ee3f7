"""The failover rehearsal: PostgreSQL's primary killed under a steady purchase load.

Heavier than :mod:`loadtests.rehearsal` and not part of the test suite. It needs Debian's
PostgreSQL 15 and ``postgresql-15-auto-failover`` (``pg_autoctl``) and runs as root (PostgreSQL
and ``pg_autoctl`` run as Debian's ``postgres`` user) or as that user itself. Under a temporary
directory, on ports of 127.0.0.1, it makes a pg_auto_failover formation: a monitor, a primary
and a synchronous standby (the monitor's health checks tightened from their 20-second default
to about 4 seconds and the promotion's wait for the old primary to demote itself from 30 to 8
seconds, so the rehearsal is short).

Two ``shopkeep-server`` hosts behind HAProxy connect with the multi-host URL
``pg_autoctl show uri`` prints (``target_session_attrs=read-write``), as pg_auto_failover's
documentation recommends. One purchase stream goes through HAProxy with the SDK's retries;
after ``--kill-after`` acknowledged purchases the primary's whole ``pg_autoctl`` process group
(its PostgreSQL included) is killed with SIGKILL. The monitor promotes the standby, the hosts'
pools reconnect through the URL by themselves, and the stream goes on. Then the same checks as
the short rehearsal (nothing acknowledged missing, nothing unannounced, no key with two effects,
wallets, the audit), and the figures: the seconds purchases were unavailable (the longest gap
between two acknowledgements) and how many attempts got 503.

    python -m loadtests.rehearsal_failover [--purchases 600 --kill-after 150]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Self

import psycopg

from shopkeep_server.launcher import Started, StoreServer, free_port

from .rehearsal import (
    HAProxy,
    RehearsalError,
    _cli,
    _plant_expired_keys,
    _print,
    _purged,
    _summary,
    _tail,
    add_stream_options,
    check_store,
    purchase_stream,
    run_checked,
)
from .seed import create_and_seed
from .stack import signals_raise

HOST = "127.0.0.1"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "shopkeep"
PG_USER = "postgres"
# The monitor's health checks, in milliseconds: a node that failed checks for this long is
# unhealthy and, if it was the primary, replaced. Then the monitor waits primary_demote_timeout
# (default 30 s) before promoting, so that a primary cut off from the monitor has demoted itself
# first (after its own network_partition_timeout, default 20 s): the second must stay longer
# than the first, or a partition could leave two primaries.
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 500,
    "pgautofailover.node_considered_unhealthy_timeout": 4000,
    "pgautofailover.primary_demote_timeout": 8000,
}
NETWORK_PARTITION_TIMEOUT_SECONDS = 5


class Formation(Started):
    """A pg_auto_failover monitor, a primary and a synchronous standby under ``work_dir``."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.ports = {name: free_port() for name in ("monitor", "node1", "node2")}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.url = ""
        account = pwd.getpwnam(PG_USER)
        self._ids = (account.pw_uid, account.pw_gid)

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{PG_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "XDG_CONFIG_HOME": str(self.work_dir / "config"),
            "XDG_DATA_HOME": str(self.work_dir / "data"),
            "XDG_RUNTIME_DIR": str(self.work_dir / "run"),
            "HOME": str(self.work_dir),
        }

    def _autoctl(self, *args: str, log: str) -> str:
        as_root = os.geteuid() == 0
        with (self.work_dir / log).open("ab") as out:
            done = subprocess.run(
                ["pg_autoctl", *args],
                env=self._env(),
                stdout=subprocess.PIPE,
                stderr=out,
                cwd=self.work_dir,
                user=self._ids[0] if as_root else None,
                group=self._ids[1] if as_root else None,
                timeout=120,
            )
        if done.returncode != 0:
            raise RehearsalError(
                f"pg_autoctl {' '.join(args)} failed:\n{_tail(self.work_dir / log)}"
            )
        return done.stdout.decode()

    def _run(self, name: str) -> None:
        as_root = os.geteuid() == 0
        with (self.work_dir / f"{name}.log").open("ab") as out:
            self.processes[name] = subprocess.Popen(
                ["pg_autoctl", "run", "--pgdata", str(self.work_dir / name)],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                user=self._ids[0] if as_root else None,
                group=self._ids[1] if as_root else None,
                start_new_session=True,
            )

    def _monitor_uri(self) -> str:
        return (
            f"postgres://autoctl_node@{HOST}:{self.ports['monitor']}/pg_auto_failover"
            "?sslmode=disable"
        )

    def start(self) -> Self:
        if shutil.which("pg_autoctl") is None or not (PG_BIN / "pg_ctl").exists():
            raise RehearsalError(
                "needs Debian's postgresql-15 and postgresql-15-auto-failover (apt-get install)"
            )
        for sub in ("", "config", "data", "run"):
            (self.work_dir / sub).mkdir(exist_ok=True)
            if os.geteuid() == 0:
                os.chown(self.work_dir / sub, *self._ids)
        common = ["--hostname", HOST, "--auth", "trust", "--no-ssl"]
        print("creating the monitor", flush=True)
        self._autoctl(
            "create", "monitor", "--pgdata", str(self.work_dir / "monitor"),
            "--pgport", str(self.ports["monitor"]), *common, log="create.log",
        )  # fmt: skip
        self._run("monitor")
        self._wait(lambda: self._monitor_ready(), "the monitor", 30)
        with psycopg.connect(
            f"host={HOST} port={self.ports['monitor']} user={PG_USER} dbname=pg_auto_failover",
            autocommit=True,
        ) as conn:
            for name, value in MONITOR_SETTINGS.items():
                conn.execute(f"ALTER SYSTEM SET {name} = {int(value)}")
            conn.execute("SELECT pg_reload_conf()")
        for node in ("node1", "node2"):
            print(f"creating {node}", flush=True)
            self._autoctl(
                "create", "postgres", "--pgdata", str(self.work_dir / node),
                "--pgport", str(self.ports[node]), "--monitor", self._monitor_uri(),
                "--dbname", DATABASE, "--name", node, *common, log="create.log",
            )  # fmt: skip
            self._autoctl(
                "config", "set", "--pgdata", str(self.work_dir / node),
                "timeout.network_partition_timeout", str(NETWORK_PARTITION_TIMEOUT_SECONDS),
                log="create.log",
            )  # fmt: skip
            self._run(node)
            if node == "node1":
                self._wait(lambda: self.states().get("node1") == "single", "node1 single", 60)
        self._wait(
            lambda: self.states() == {"node1": "primary", "node2": "secondary"},
            "a primary and a secondary",
            90,
        )
        uri = self._autoctl(
            "show", "uri", "--pgdata", str(self.work_dir / "monitor"), "--formation", "default",
            log="show.log",
        ).strip()  # fmt: skip
        # The formation's URI names no user; PostgreSQL's owner is the one pg_hba trusts.
        self.url = uri.replace("postgres://", f"postgres://{PG_USER}@", 1)
        return self

    def _monitor_ready(self) -> bool:
        try:
            with psycopg.connect(
                f"host={HOST} port={self.ports['monitor']} user={PG_USER}"
                " dbname=pg_auto_failover connect_timeout=2"
            ):
                return True
        except psycopg.Error:
            return False

    def states(self) -> dict[str, str]:
        """Each node's reported state, as the monitor sees it."""
        try:
            with psycopg.connect(
                f"host={HOST} port={self.ports['monitor']} user={PG_USER}"
                " dbname=pg_auto_failover connect_timeout=2"
            ) as conn:
                rows = conn.execute(
                    "SELECT nodename, reportedstate::text FROM pgautofailover.node"
                ).fetchall()
        except psycopg.Error:
            return {}
        return dict(rows)

    @staticmethod
    def _wait(ready: Any, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                raise RehearsalError(f"{what}: not reached in {seconds:g} s")
            time.sleep(0.5)

    def kill(self, name: str) -> None:
        """SIGKILL node ``name``'s pg_autoctl and everything it started (its PostgreSQL)."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        # The postmaster is in the group, its backends are its children: none survives.
        pid_file = self.work_dir / name / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)

    def stop(self) -> None:
        for name in ("node2", "node1", "monitor"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def run(args: argparse.Namespace) -> int:
    """Start everything, run the stream, kill the primary, check; returns the exit code."""
    work = Path(tempfile.mkdtemp(prefix="shopkeep-failover-"))
    work.chmod(0o755)
    try:
        with signals_raise(), contextlib.ExitStack() as stack:
            formation = stack.enter_context(Formation(work / "formation"))
            print(f"formation up: {formation.url}", flush=True)
            env = {"SHOPKEEP_RATE_LIMIT": "none", "SHOPKEEP_PURGE_INTERVAL": "1"}
            hosts = [
                stack.enter_context(
                    StoreServer(
                        database_url=formation.url,
                        workers=1,
                        env=env,
                        log_path=work / f"host{i}.log",
                        own_process_group=True,
                    )
                )
                for i in (1, 2)
            ]
            balancer = stack.enter_context(
                HAProxy([h.port for h in hosts], work_dir=work / "haproxy")
            )
            game = f"fo{uuid.uuid4().hex[:12]}"
            seeded = create_and_seed(
                lambda *a: _cli(hosts[0], *a),
                balancer.url,
                game=game,
                players=args.players,
                stock=1,
            )
            expired = _plant_expired_keys(formation.url, game, count=50)

            promoted_at: list[float] = []
            killed = threading.Event()

            def watch_promotion() -> None:
                killed.wait()
                while not promoted_at and time.monotonic() < started + 600:
                    if formation.states().get("node2") in ("wait_primary", "primary"):
                        promoted_at.append(time.monotonic())
                    time.sleep(0.25)

            def kill_primary() -> None:
                formation.kill("node1")
                killed.set()
                print("killed the primary (node1): pg_autoctl and PostgreSQL, SIGKILL", flush=True)

            watcher = threading.Thread(target=watch_promotion, daemon=True)
            started = time.monotonic()
            watcher.start()
            stream = purchase_stream(
                balancer.url,
                seeded.roster,
                purchases=args.purchases,
                threads=args.threads,
                kill_after=args.kill_after,
                kill=kill_primary,
                seed=16,
                # Re-sends for over three minutes (2-second ceiling): enough to outlast a failover.
                max_retries=100,
            )
            elapsed = time.monotonic() - started
            killed.set()
            watcher.join()
            print(f"formation after the stream: {formation.states()}", flush=True)
            audit = hosts[0].cli("audit")
            checks = check_store(formation.url, game, stream, audit)
            checks.append(_purged(formation.url, game, expired))
            summary = _summary(args, stream, elapsed, checks)
            stamps = sorted(t.acknowledged_at for t in stream.told if t.acknowledged_at)
            gaps = [b - a for a, b in itertools.pairwise(stamps)]
            summary["seconds_unavailable"] = round(max(gaps), 2) if gaps else None
            summary["attempts_503"] = stream.attempts.outcomes.get("503", 0)
            summary["states_after"] = formation.states()
            summary["seconds_from_kill_to_promotion"] = (
                round(promoted_at[0] - stream.killed_at, 2)
                if promoted_at and stream.killed_at is not None
                else None
            )
            _print(summary)
            print(
                "the monitor promoted the standby"
                f" {summary['seconds_from_kill_to_promotion']} s after the kill"
            )
            print(
                f"purchases unavailable for {summary['seconds_unavailable']} s"
                f" (the longest gap between two acknowledgements);"
                f" {summary['attempts_503']} attempts got 503"
            )
            if args.summary:
                Path(args.summary).write_text(json.dumps(summary, indent=1))
            return 0 if summary["ok"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m loadtests.rehearsal_failover``."""
    p = argparse.ArgumentParser(
        prog="python -m loadtests.rehearsal_failover",
        description=(
            "A pg_auto_failover formation (monitor, primary, synchronous standby) under two"
            " shopkeep-server hosts behind HAProxy; the primary killed with SIGKILL under a"
            " purchase stream; then the invariants, the audit, the unavailable seconds and the"
            " 503 count."
        ),
    )
    add_stream_options(p, purchases=600, victim="the primary")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    args.hosts, args.workers, args.pgbouncer = 2, 1, False
    return run_checked(p, args, run, what="failover rehearsal")


if __name__ == "__main__":
    sys.exit(main())
