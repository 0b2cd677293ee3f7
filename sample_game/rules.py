"""The rules the game client and the studio backend share: round length and coin schedule.

The backend never trusts the coin count a client reports; it caps it at what a round can
physically yield. Both sides compute that cap from this one schedule, so a change to the
game's economy is a change here and nowhere else.
"""

from __future__ import annotations

FPS = 60
"""Simulation steps per second; the world advances a fixed 1/FPS per frame."""

DEFAULT_ROUND_SECONDS = 45
"""How long a round lasts unless the ship is destroyed first."""

COIN_EVERY_FRAMES = 24
"""A coin spawns every this many frames (0.4 s): a fixed cadence, so the cap is exact."""

BIG_COIN_EVERY = 8
"""Every this-many-th coin is a big one."""

SMALL_COIN_VALUE = 1
BIG_COIN_VALUE = 5

SHIELD_SECONDS = 10
"""Invulnerability a shield potion gives (the catalog's description says ten seconds)."""

MAX_LIVES = 5
START_LIVES = 3


def round_frames(round_seconds: int) -> int:
    """Frames in a round of ``round_seconds``."""
    return round_seconds * FPS


def coin_value(index: int) -> int:
    """The value of the ``index``-th coin of a round (0-based)."""
    return BIG_COIN_VALUE if (index + 1) % BIG_COIN_EVERY == 0 else SMALL_COIN_VALUE


def coins_spawned(frames: int) -> int:
    """How many coins spawn in the first ``frames`` frames of a round."""
    # A coin spawns on every frame f >= 1 with f % COIN_EVERY_FRAMES == 0.
    return frames // COIN_EVERY_FRAMES


def max_coins_per_round(round_seconds: int) -> int:
    """The most coins a round can yield: every coin that spawns, collected."""
    return sum(coin_value(i) for i in range(coins_spawned(round_frames(round_seconds))))
