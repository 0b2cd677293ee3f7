"""One unit of store work per call: a pooled connection, retried on transient conflicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg

from ..db import run_with_retry
from .services import services

T = TypeVar("T")


def with_connection(work: Callable[[psycopg.Connection], T]) -> T:
    """Runs one unit of store work on a pooled connection, retried on transient conflicts
    (db.run_with_retry): ``work`` must be one transaction or one statement, so a rerun is safe."""
    return run_with_retry(services().db, work)
