"""The SDK's risk calls for a studio's backend, against the live server: freeze, read, tier,
unfreeze, with the player's own client seeing the typed refusals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shopkeep import AccountFrozenError, AsyncStoreClient, LimitExceededError, StoreClient
from support import coins_item

POLICY = {"tiers": [{"name": "new", "while_younger_than_seconds": 3600, "limited_items": False}]}


def test_a_backend_freezes_tiers_and_unfreezes_a_player(live_server: Any) -> None:
    game = live_server.new_game(
        {
            "currencies": [{"code": "COINS", "name": "Coins", "scale": 0}],
            "items": [coins_item("potion", 50), coins_item("egg", 100, stock=3)],
            "risk": POLICY,
        }
    )
    game.grant("p1", "COINS", 1_000)
    with (
        StoreClient(live_server.url, game.token("service", "backend")) as backend,
        StoreClient(live_server.url, game.token("player", "p1")) as player,
    ):
        with pytest.raises(LimitExceededError) as refused:
            player.purchase("egg")
        assert refused.value.rule == "tier"
        assert refused.value.retry_at is not None

        frozen = backend.freeze_player("p1", reason="chargeback")
        assert frozen.frozen and frozen.freeze is not None
        assert (frozen.freeze.reason, frozen.freeze.frozen_by) == ("chargeback", "backend")
        with pytest.raises(AccountFrozenError):
            player.purchase("potion")
        assert player.wallet().balances[0].amount == 1_000  # reads still work

        raised = backend.set_player_tier("p1", "trusted", reason="verified")
        assert raised.tier is None
        assert raised.tier_set is not None and raised.tier_set.tier == "trusted"
        unfrozen = backend.unfreeze_player("p1", reason="card owner confirmed")
        assert not unfrozen.frozen
        assert [(e.kind, e.code, e.rule) for e in unfrozen.events] == [
            ("unfrozen", None, None),
            ("tier_changed", None, None),
            ("refused", "account_frozen", None),
            ("frozen", None, None),
            ("refused", "limit_exceeded", "tier"),
        ]
        assert player.purchase("egg").purchase.sku == "egg"

    async def read_async() -> str | None:
        async with AsyncStoreClient(live_server.url, game.token("service", "backend")) as client:
            return (await client.player_risk("p1")).tier_set.tier  # type: ignore[union-attr]

    assert asyncio.run(read_async()) == "trusted"


def test_a_backend_reads_risk_decisions_from_the_feed(live_server: Any) -> None:
    game = live_server.new_game(
        {
            "currencies": [{"code": "COINS", "name": "Coins", "scale": 0}],
            "items": [coins_item("potion", 50)],
            "risk": {"spend_limits": [{"currency": "COINS", "window_seconds": 60, "max_count": 1}]},
        }
    )
    game.grant("p1", "COINS", 1_000)
    with (
        StoreClient(live_server.url, game.token("service", "backend")) as backend,
        StoreClient(live_server.url, game.token("player", "p1")) as player,
    ):
        player.purchase("potion")
        with pytest.raises(LimitExceededError) as refused:
            player.purchase("potion")
        backend.freeze_player("p1", reason="card testing")
        decisions = list(backend.events(types=["risk.limit_exceeded", "risk.player_frozen"]))
        recorded = list(reversed(backend.player_risk("p1").events))
    assert [(e.type, e.player_id) for e in decisions] == [
        ("risk.limit_exceeded", "p1"),
        ("risk.player_frozen", "p1"),
    ]
    assert [e.risk for e in decisions] == recorded
    limit = decisions[0].risk
    assert limit is not None
    assert (limit.kind, limit.operation, limit.rule) == ("refused", "purchase", "spend_limit")
    assert limit.details["retry_at"] == refused.value.details["retry_at"]
    assert decisions[1].risk is not None and decisions[1].risk.reason == "card testing"
