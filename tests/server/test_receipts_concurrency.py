"""One App Store transaction sent at once by several players under several keys, to the live
server (real workers, committed transactions): credited exactly once, every other answer a
409 receipt_already_used, and the books balance."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from shopkeep_server import db
from shopkeep_server.sandbox_store import SandboxAppStore
from shopkeep_server.store.audit import audit
from support import stores as s

SENDERS = 12


def test_a_transaction_raced_by_many_is_credited_once(live_server: Any) -> None:
    apple = SandboxAppStore.create()
    game = live_server.new_game(catalog=s.money_catalog())
    configured = httpx.put(
        f"{live_server.url}/v1/admin/stores/app_store",
        json={
            "bundle_id": s.BUNDLE_ID,
            "environment": "sandbox",
            "root_certificates": [apple.root_pem()],
        },
        headers={"Authorization": f"Bearer {game.token('studio', 'studio-1')}"},
    )
    assert configured.status_code == 200
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=s.USD_5["app_store"])

    def send(n: int) -> tuple[str, int, str | None]:
        player = f"racer-{n % 4}"
        response = httpx.post(
            f"{live_server.url}/v1/receipts",
            json={"store": "app_store", "signed_transaction": jws},
            headers={
                "Authorization": f"Bearer {game.token('player', player)}",
                "Idempotency-Key": f"race-{uuid.uuid4()}",
            },
            timeout=30,
        )
        code = None if response.status_code == 201 else response.json()["error"]["code"]
        return player, response.status_code, code

    with ThreadPoolExecutor(SENDERS) as pool:
        answers = list(pool.map(send, range(SENDERS)))
    winners = [player for player, status, _ in answers if status == 201]
    assert len(winners) == 1
    assert sorted(code for _, status, code in answers if status != 201) == [
        "receipt_already_used"
    ] * (SENDERS - 1)
    with db.connect(live_server.database_url) as conn:
        rows = conn.execute(
            "SELECT player_id, sum(delta) FROM ledger_entries WHERE game_id = %s GROUP BY 1",
            (game.id,),
        ).fetchall()
        assert rows == [(winners[0], 50_000)]
        assert [line for line in audit(conn) if game.id in line] == []
