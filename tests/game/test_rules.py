"""The coin cap the backend enforces is exactly what a round can yield."""

from __future__ import annotations

import pytest

from sample_game.rules import max_coins_per_round
from sample_game.world import Controls, Round, autopilot


@pytest.mark.parametrize("seconds", [10, 45, 60])
def test_the_cap_is_every_coin_a_full_round_spawns(seconds: int) -> None:
    world = Round(width=960, height=600, round_seconds=seconds, seed=seconds)
    world.shield_frames = 10**9  # nothing may end the round early
    while not world.over:
        world.step(Controls())
    assert world.end_reason == "time"
    assert world.value_spawned == max_coins_per_round(seconds)


def test_a_seeded_round_is_repeatable() -> None:
    def play() -> tuple[int, int, int]:
        world = Round(width=960, height=600, round_seconds=10, seed=42)
        while not world.over:
            world.step(autopilot(world))
        return world.coins, world.coins_caught, world.hits

    first = play()
    assert first == play()
    assert 0 < first[0] <= max_coins_per_round(10)
