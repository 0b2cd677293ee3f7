"""The sample's studio backend subscribes to the store's webhooks and announces sales in the
game: "The last Dragon egg just sold!" reaches a playing session as a toast. Deliveries are
checked (a forged one is refused) and announced once however often they come."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from sample_game.backend import WEBHOOK_PATH, BackendClient
from sample_game.launch import make_session
from shopkeep import StoreClient
from support import coins_catalog, coins_item

WAIT_SECONDS = 30.0
EGGS = 2


def wait_for(
    condition: Callable[[], bool], what: str, *, tick: Callable[[], object] = lambda: 0
) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"waited too long for {what}"
        tick()
        time.sleep(0.05)


def test_the_last_egg_is_announced_to_the_players(
    live_server: Any, studio_backend: Any, tmp_path: Any
) -> None:
    game = live_server.new_game(
        coins_catalog(
            coins_item("potion", 5),
            coins_item("dragon_egg", 100, name="Dragon egg", stock=EGGS, per_player_limit=1),
        )
    )
    backend = studio_backend(game)
    webhook_id = backend.subscribe(game.token("studio", "designer"))
    assert webhook_id and backend.webhook_secret and backend.webhook_secret.startswith("whsec_")

    watcher = BackendClient(backend.url, game.token("player", "watcher"))
    session = make_session(
        live_server.url, game.token("player", "watcher"), backend=watcher, data_dir=tmp_path
    )
    try:
        for buyer in ("ann", "bob"):
            game.grant(buyer, "COINS", 500)
            with StoreClient(live_server.url, game.token("player", buyer)) as client:
                client.purchase("potion")  # not limited: no announcement
                client.purchase("dragon_egg")
        wanted = [
            "ann just bought a Dragon egg.",
            "bob just bought a Dragon egg.",
            "The last Dragon egg just sold!",
        ]
        wait_for(
            lambda: [t.text for t in session.toasts][-3:] == wanted,
            "the announcements in the game",
            tick=session.tick,
        )
        texts, last = watcher.announcements()
        assert texts == wanted
        assert watcher.announcements(after=last) == ([], last)
    finally:
        session.close()
        session.client.close()
        watcher.close()


def test_a_forged_or_repeated_delivery_is_not_announced_twice(
    live_server: Any, studio_backend: Any
) -> None:
    game = live_server.new_game()
    backend = studio_backend(game)
    backend.subscribe(game.token("studio", "designer"))
    event = {
        "id": 10**9,  # far past anything the store sends this game
        "type": "stock.sold_out",
        "player_id": "x",
        "created_at": "2026-01-01T00:00:00Z",
        "data": {"sku": "dragon_egg", "remaining": 0},
    }
    body = json.dumps(event).encode()
    now = dt.datetime.now(dt.UTC)
    signed = {
        "webhook-id": str(event["id"]),
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(backend.webhook_secret).sign(
            str(event["id"]), now, body.decode()
        ),
    }
    forged = {**signed, "webhook-signature": "v1,Zm9yZ2Vk"}
    assert httpx.post(backend.url + WEBHOOK_PATH, content=body, headers=forged).status_code == 400
    assert backend.announcements() == {"announcements": [], "last": 0}
    for _ in range(3):  # at least once: the same event may come again
        answer = httpx.post(backend.url + WEBHOOK_PATH, content=body, headers=signed)
        assert answer.status_code == 204
    assert backend.announcements()["announcements"] == [
        {"id": 10**9, "text": "The last Dragon egg just sold!"}
    ]
