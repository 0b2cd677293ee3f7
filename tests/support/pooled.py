"""A pytest plugin for running tests through a pooler in transaction mode that cannot keep
prepared statements (PgBouncer before 1.21): ``pytest -p support.pooled ...``.

The store's own connections follow SHOPKEEP_PREPARED_STATEMENTS=off; the tests open many
connections of their own (fixtures, checks), with psycopg's default of preparing a statement
run five times. Through such a pooler the next transaction may reach a server connection that
lacks the statement or holds another client's of the same name, so here every connection the
process opens never prepares, as the store's do.
"""

from __future__ import annotations

from typing import Any

import psycopg

_connect = psycopg.Connection.connect.__func__


def _connect_unprepared(
    cls: type[psycopg.Connection[Any]], conninfo: str = "", **kwargs: Any
) -> psycopg.Connection[Any]:
    kwargs["prepare_threshold"] = None
    return _connect(cls, conninfo, **kwargs)


# Connection.connect is what psycopg_pool calls; psycopg.connect is a copy of it.
psycopg.Connection.connect = classmethod(_connect_unprepared)  # type: ignore[assignment,method-assign]
psycopg.connect = psycopg.Connection.connect
