"""Serving with gunicorn: workers fork from a master that owns the (embedded) database."""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import threading
import time
from typing import Any

from gunicorn.app.base import BaseApplication

from .config import Config

log = logging.getLogger(__name__)


class Janitor(threading.Thread):
    """Purges expired idempotency keys every ``interval`` seconds from inside a worker; an
    advisory lock makes one worker of the whole deployment do it each time."""

    def __init__(self, config: Config) -> None:
        super().__init__(name="shopkeep-janitor", daemon=True)
        self.config = config

    def run(self) -> None:
        from . import db
        from .store.idempotency import purge_if_free

        assert self.config.database_url is not None
        while True:
            # Spread the workers out so they do not all wake at once.
            time.sleep(self.config.purge_interval * random.uniform(0.9, 1.1))
            try:
                with db.connect(self.config.database_url) as conn:
                    purged = purge_if_free(conn)
                if purged:
                    log.info("purged %d expired idempotency keys", purged)
            except Exception:  # a failed purge is retried next time; the worker goes on
                log.exception("purging expired idempotency keys failed")


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class StoreServer(BaseApplication):
    """gunicorn running create_app in each worker (after the fork, so every worker has its own
    connection pool)."""

    def __init__(self, config: Config, *, host: str, port: int, workers: int) -> None:
        self.store_config = config
        self.options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": config.threads,
            "timeout": 60,
            "graceful_timeout": 10,
            "keepalive": 5,
            "loglevel": config.log_level.lower(),
            "accesslog": None,
            "child_exit": _child_exit,
            "proc_name": "shopkeep-server",
            # Several stores may run on one machine (tests, load tests): no shared control socket.
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from .app import create_app

        if self.store_config.purge_interval:
            Janitor(self.store_config).start()
        return create_app(self.store_config)


def serve(config: Config, *, host: str, port: int, workers: int) -> None:
    """Serves until SIGINT/SIGTERM. The metrics of all workers are summed through a
    multiprocess directory made for this run."""
    metrics_dir = tempfile.mkdtemp(prefix="shopkeep-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        StoreServer(config, host=host, port=port, workers=workers).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
