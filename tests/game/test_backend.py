"""The studio backend: verifies the player through the store, caps a round, pays it once."""

from __future__ import annotations

from typing import Any

import pytest

from sample_game.backend import BackendClient, BackendError
from sample_game.rules import max_coins_per_round

PLAYER = "earner-1"
ROUND = "round-0001-abcdef"


def test_a_round_is_capped_and_paid_once(
    live_server: Any, studio_backend: Any, store_tools: Any
) -> None:
    game = live_server.new_game()
    backend = studio_backend(game)
    service = store_tools.service(game)
    cap = max_coins_per_round(backend.round_seconds)
    client = BackendClient(backend.url, game.token("player", PLAYER))
    try:
        first = client.finish_round(ROUND, cap + 50)
        assert (first.player_id, first.coins_granted, first.capped) == (PLAYER, cap, True)
        assert (first.balance, first.replayed) == (cap, False)

        # A retried finish (a lost answer, a double click) replays the first grant.
        again = client.finish_round(ROUND, cap + 50)
        assert (again.coins_granted, again.balance, again.replayed) == (cap, cap, True)

        # The same round claimed again with another count is refused, not paid.
        with pytest.raises(BackendError) as refused:
            client.finish_round(ROUND, 3)
        assert (refused.value.status, refused.value.code) == (409, "round_already_banked")

        nothing = client.finish_round("round-0002-abcdef", 0)
        assert (nothing.coins_granted, nothing.balance) == (0, None)

        with pytest.raises(BackendError) as negative:
            client.finish_round("round-0003-abcdef", -5)
        assert negative.value.status == 400
        with pytest.raises(BackendError) as bad_id:
            client.finish_round("x", 5)
        assert bad_id.value.status == 400
    finally:
        client.close()

    assert service.player_wallet(PLAYER).balance("COINS") == cap
    assert [(e.kind, e.delta) for e in service.player_ledger(PLAYER)] == [("grant", cap)]


@pytest.mark.parametrize("who", ["forged", "service", "other_game"])
def test_only_a_valid_player_of_this_game_earns(
    live_server: Any, studio_backend: Any, store_tools: Any, who: str
) -> None:
    game = live_server.new_game()
    backend = studio_backend(game)
    token = {
        "forged": game.token("player", PLAYER)[:-4] + "AAAA",
        "service": game.token("service", "sneaky"),
        "other_game": live_server.new_game().token("player", PLAYER),
    }[who]
    client = BackendClient(backend.url, token)
    try:
        with pytest.raises(BackendError) as refused:
            client.finish_round(ROUND, 10)
    finally:
        client.close()
    assert refused.value.status == (403 if who == "other_game" else 401)
    assert not refused.value.retryable
    assert store_tools.service(game).player_wallet(PLAYER).balance("COINS") == 0


def test_a_finish_retried_across_a_store_outage_pays_once(
    live_server: Any, fault_proxy: Any, store_tools: Any
) -> None:
    from sample_game.backend import StudioBackend

    game = live_server.new_game()
    backend = StudioBackend(fault_proxy.url, game.token("service", "backend")).start()
    client = BackendClient(backend.url, game.token("player", PLAYER))
    try:
        # The grant lands but its answer is lost; then the store is down.
        client.finish_round("round-warmup-0001", 1)
        fault_proxy.mode = "drop"
        with pytest.raises(BackendError) as lost:
            client.finish_round(ROUND, 12)
        assert lost.value.retryable
        fault_proxy.mode = "down"
        with pytest.raises(BackendError) as down:
            client.finish_round(ROUND, 12)
        assert (down.value.status, down.value.retryable) == (503, True)
        fault_proxy.mode = "up"
        paid = client.finish_round(ROUND, 12)
        assert (paid.coins_granted, paid.balance, paid.replayed) == (12, 13, True)
    finally:
        client.close()
        backend.stop()
    ledger = [(e.kind, e.delta) for e in store_tools.service(game).player_ledger(PLAYER)]
    assert ledger == [("grant", 12), ("grant", 1)]
