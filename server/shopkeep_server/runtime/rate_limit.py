"""Requests per account per process."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from ..auth import Principal
from ..errors import RateLimited


class RateLimiter:
    """Requests per principal per process (the `limits` library keeps the windows)."""

    def __init__(self, spec: str | None) -> None:
        self._items: list[RateLimitItem] = parse_many(spec) if spec else []
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    def check(self, principal: Principal) -> None:
        for item in self._items:
            if not self._limiter.hit(item, principal.game, principal.subject):
                reset_at, _ = self._limiter.get_window_stats(
                    item, principal.game, principal.subject
                )
                retry_after = max(1, math.ceil(reset_at - time.time()))
                raise RateLimited(
                    f"at most {item} per account", headers={"Retry-After": str(retry_after)}
                )
