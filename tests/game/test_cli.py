"""``shopkeep-demo`` from the command line: a headless script, and the private demo store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sample_game.__main__ import main
from sample_game.localstore import LocalStore

PLAYER = "cli-1"

SCRIPT = """
# a round on autopilot, then buy a potion
wait_idle
tap space
until_scene ResultsScene
wait_idle
tap enter
wait_idle
select potion
tap enter
wait_idle
screenshot after-potion
"""


def test_headless_script_against_a_server(
    live_server: Any, store_tools: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    game = live_server.new_game()
    game.grant(PLAYER, "COINS", 100)
    script = tmp_path / "session.txt"
    script.write_text(SCRIPT)
    status = main(
        [
            "--headless",
            "--server",
            live_server.url,
            "--player-token",
            game.token("player", PLAYER),
            "--service-token",
            game.token("service", "backend"),
            "--data-dir",
            str(tmp_path / "data"),
            "--round-seconds",
            "10",
            "--seed",
            "5",
            "--autopilot",
            "--script",
            str(script),
            "--screenshots",
            str(tmp_path / "shots"),
        ]
    )
    assert status == 0
    assert (tmp_path / "shots" / "after-potion.png").exists()
    assert str(tmp_path / "shots" / "after-potion.png") in capsys.readouterr().out

    service = store_tools.service(game)
    ledger = [(e.kind, e.delta) for e in service.player_ledger(PLAYER)]
    assert ledger[0] == ("purchase", -50)
    assert ledger[2] == ("grant", 100)
    kind, earned = ledger[1]
    assert kind == "grant" and earned > 0
    assert service.player_wallet(PLAYER).balance("COINS") == 100 + earned - 50
    assert {e.sku: e.quantity for e in service.player_inventory(PLAYER)} == {"potion": 1}


@pytest.mark.slow
def test_the_private_demo_store_starts_and_stops(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "demo")
    try:
        store.start()
        headers = {"Authorization": f"Bearer {store.player_token}"}
        wallet = httpx.get(f"{store.url}/v1/wallet", headers=headers).json()
        assert {(b["currency"], b["amount"]) for b in wallet["balances"]} == {
            ("COINS", 1000),
            ("GEMS", 10),
            ("USD", 10_000),
        }
        service = {"Authorization": f"Bearer {store.service_token}"}
        player = httpx.get(f"{store.url}/v1/players/player-1/inventory", headers=service)
        assert player.status_code == 200
    finally:
        store.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{store.url}/healthz")
