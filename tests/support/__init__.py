"""What test modules import: ``from support import X``. Fixtures stay in the conftest.py files.

- :mod:`support.games`: ``make_config``, ``Game``, ``make_game``, ``coins_item``,
  ``coins_catalog``.
- :mod:`support.api`: requests through Flask's test client (``new_key``, ``post``, ``buy``,
  ``grant``, ``balances``, ``inventory``).
- :mod:`support.database`: ``snapshot`` of a game's money state, the session database
  (``create_database``, ``with_database``, ``app_database_url`` as the server's role) and
  its end-of-session audit (``audit_failure``).
- :mod:`support.live`: the live server (``LiveServer``, ``GameHandle``, ``start_server``,
  ``stop_server``, ``free_port``).
- :mod:`support.game` (the sample game's tests) and :mod:`support.sdk_fakes` (the SDK's
  in-memory store) are imported by module: they are not re-exported here.

Importable as ``support`` because pyproject.toml's pytest section puts tests/ on the path.
"""

from pathlib import Path

from .api import balances, buy, grant, inventory, new_key, post
from .database import (
    APP_LOGIN,
    APP_PASSWORD,
    app_database_url,
    audit_failure,
    create_database,
    drop_database,
    lock_held,
    snapshot,
    with_database,
)
from .games import Game, coins_catalog, coins_item, make_config, make_game
from .live import GameHandle, LiveServer, free_port, start_server, stop_server

# The repository's root (commands that read its files run there).
ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "APP_LOGIN",
    "APP_PASSWORD",
    "ROOT",
    "Game",
    "GameHandle",
    "LiveServer",
    "app_database_url",
    "audit_failure",
    "balances",
    "buy",
    "coins_catalog",
    "coins_item",
    "create_database",
    "drop_database",
    "free_port",
    "grant",
    "inventory",
    "lock_held",
    "make_config",
    "make_game",
    "new_key",
    "post",
    "snapshot",
    "start_server",
    "stop_server",
    "with_database",
]
