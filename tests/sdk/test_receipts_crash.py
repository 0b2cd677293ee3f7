"""The crash between "the store charged" and "we credited": the game dies while redeeming an
App Store receipt, before its request reached the server or after the server credited it but
before the game heard; the next start's resume_pending() credits it exactly once. Against the
session's live server, with a transaction signed by a chain made here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from shopkeep import ReceiptAlreadyUsed, StoreClient
from shopkeep_server.sandbox_store import SandboxAppStore
from support import stores as s
from support.sdk_fakes import Crash


class CrashingTransport(httpx.BaseTransport):
    """Real HTTP, but the game dies on its way: before the request leaves, or once the
    server has answered and before the game reads the answer."""

    def __init__(self, when: Literal["before", "after"]) -> None:
        self.when = when
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.when == "before":
            raise Crash
        self.inner.handle_request(request).read()
        raise Crash


@pytest.fixture(scope="module")
def apple() -> SandboxAppStore:
    return SandboxAppStore.create()


@pytest.fixture
def game(server: Any, apple: SandboxAppStore) -> Any:
    game = server.new_game(catalog=s.money_catalog())
    response = httpx.put(
        f"{server.url}/v1/admin/stores/app_store",
        json={
            "bundle_id": s.BUNDLE_ID,
            "environment": "sandbox",
            "root_certificates": [apple.root_pem()],
        },
        headers={"Authorization": f"Bearer {game.token('studio', 'studio-1')}"},
    )
    assert response.status_code == 200, response.text
    return game


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_journal_credits_a_paid_receipt_exactly_once_after_a_crash(
    server: Any, game: Any, apple: SandboxAppStore, tmp_path: Path, when: Literal["before", "after"]
) -> None:
    journal = tmp_path / "pending.json"
    token = game.token("player", "p1")
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id=s.USD_5["app_store"])
    doomed = StoreClient(server.url, token, pending_path=journal, transport=CrashingTransport(when))
    with pytest.raises(Crash):
        doomed.redeem_receipt("app_store", {"signed_transaction": jws})
    [entry] = json.loads(journal.read_text())["entries"]
    assert entry["path"] == "/v1/receipts"
    assert entry["body"] == {"store": "app_store", "signed_transaction": jws}

    # The next start of the game: a new client on the same journal.
    with StoreClient(server.url, token, pending_path=journal) as restarted:
        [outcome] = restarted.resume_pending()
        assert outcome.state == "completed"
        assert outcome.result is not None
        assert outcome.result.idempotency_key == entry["idempotency_key"]
        assert outcome.result.replayed is (when == "after")
        assert restarted.wallet().balance("USD") == 50_000
        assert restarted.pending() == []
        assert restarted.resume_pending() == []
        # Sent again under a new key (a game that forgot it had), it is refused: still once.
        with pytest.raises(ReceiptAlreadyUsed):
            restarted.redeem_receipt("app_store", {"signed_transaction": jws})
        assert restarted.wallet().balance("USD") == 50_000
        ledger = [(e.kind, e.delta) for e in restarted.ledger()]
        assert ledger == [("topup", 50_000)]
        # The prepaid balance pays for a tip of 0.0150 USD.
        catalog = restarted.catalog()
        assert catalog.product("app_store", s.USD_5["app_store"]).id == "usd_5"
        bought = restarted.purchase("tip", expected_price=catalog.item("tip").price())
        assert bought.balance("USD") == 49_850


def test_a_receipt_naming_a_hold_is_journaled_with_it_and_buys_the_held_unit(
    server: Any, apple: SandboxAppStore, tmp_path: Path
) -> None:
    catalog = s.money_catalog()
    catalog["items"].append(
        {
            "sku": "egg",
            "name": "Egg",
            "kind": "consumable",
            "prices": [{"currency": "USD", "amount": 10_000}],
            "stock": 1,
        }
    )
    catalog["products"].append(
        {
            "id": "egg_pack",
            "store_ids": {"app_store": "com.example.egg"},
            "grants": {"items": [{"sku": "egg", "quantity": 1}]},
        }
    )
    game = server.new_game(catalog=catalog)
    put = httpx.put(
        f"{server.url}/v1/admin/stores/app_store",
        json={
            "bundle_id": s.BUNDLE_ID,
            "environment": "sandbox",
            "root_certificates": [apple.root_pem()],
        },
        headers={"Authorization": f"Bearer {game.token('studio', 'studio-1')}"},
    )
    assert put.status_code == 200, put.text
    journal = tmp_path / "pending.json"
    token = game.token("player", "p1")
    with StoreClient(server.url, token) as client:
        hold = client.place_hold("egg")
    jws = apple.transaction(bundle_id=s.BUNDLE_ID, product_id="com.example.egg")
    doomed = StoreClient(
        server.url, token, pending_path=journal, transport=CrashingTransport("after")
    )
    with pytest.raises(Crash):
        doomed.redeem_receipt("app_store", {"signed_transaction": jws}, hold_id=hold.id)
    [entry] = json.loads(journal.read_text())["entries"]
    assert entry["body"] == {"store": "app_store", "signed_transaction": jws, "hold_id": hold.id}
    with StoreClient(server.url, token, pending_path=journal) as restarted:
        [outcome] = restarted.resume_pending()
        assert outcome.state == "completed"
        assert outcome.result is not None and outcome.result.replayed is True
        assert restarted.inventory().quantity("egg") == 1
        assert restarted.get_hold(hold.id).status == "consumed"
        assert restarted.stock(["egg"])[0].remaining == 0
