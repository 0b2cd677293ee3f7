"""The SDK's hold calls on the wire: what each sends, that a release is re-sent like a GET and a
hold like a keyed POST (same key), and that a purchase names its hold."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from shopkeep import Hold, HoldExpired, StoreClient
from support.sdk_fakes import error_response

HOLD = {
    "id": "7d1c3a52-5f43-4d8e-9a55-0c1f2e3d4b5a",
    "sku": "egg",
    "quantity": 2,
    "status": "active",
    "expires_at": "2026-12-01T14:10:00.000000Z",
    "created_at": "2026-12-01T14:00:00.000000Z",
}


def test_a_hold_is_placed_once_per_key_across_retries(
    make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return error_response(503, "unavailable", "busy", headers={"Retry-After": "1"})
        return httpx.Response(201, json={"hold": HOLD})

    hold = make_client(handler).place_hold("egg", 2)
    assert hold == Hold.from_wire(HOLD)
    assert hold.expires_at.isoformat() == "2026-12-01T14:10:00+00:00"
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/v1/holds")] * 2
    assert [json.loads(r.content) for r in seen] == [{"sku": "egg", "quantity": 2}] * 2
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1
    assert sleeps == [1.0]


def test_a_release_is_re_sent_after_a_lost_answer(
    make_client: Callable[..., StoreClient], sleeps: list[float]
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ReadTimeout("lost", request=request)
        return httpx.Response(200, json={"hold": {**HOLD, "status": "released"}})

    released = make_client(handler).release_hold(HOLD["id"])
    assert released.status == "released"
    assert [(r.method, r.url.path) for r in seen] == [("DELETE", f"/v1/holds/{HOLD['id']}")] * 2
    assert "Idempotency-Key" not in seen[0].headers
    assert len(sleeps) == 1


def test_a_purchase_names_its_hold_and_an_ended_one_is_typed(
    make_client: Callable[..., StoreClient],
) -> None:
    bodies: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        details = {"hold_id": HOLD["id"], "sku": "egg", "status": "expired"}
        return error_response(409, "hold_expired", "hold is expired", details)

    with pytest.raises(HoldExpired) as refused:
        make_client(handler).purchase("egg", quantity=2, hold_id=HOLD["id"])
    assert refused.value.details["status"] == "expired"
    assert bodies == [{"sku": "egg", "quantity": 2, "hold_id": HOLD["id"]}]
    with pytest.raises(ValueError):
        make_client(handler).purchase("egg", hold_id="")
