"""The SDK's side of the contract: each captured body goes through the parser the SDK uses for
that route, and every field of the body must survive in what the parser returns."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from shopkeep import Money
from shopkeep._core import (
    CatalogCache,
    op_consume,
    op_get_purchase,
    op_grant,
    op_inventory,
    op_ledger_page,
    op_purchases_page,
    op_redeem_code,
    op_refund,
    op_steam_order,
    op_stock,
    op_wallet,
    parse_purchase_result,
    parse_receipt_result,
)
from shopkeep.errors import error_from_body
from shopkeep.events import parse_event_page
from shopkeep.holds import op_get_hold, op_place_hold, op_release_hold
from shopkeep.models import parse_time
from shopkeep.risk import op_freeze, op_player_risk, op_set_tier
from shopkeep.studio import (
    op_get_draft,
    op_publish,
    op_put_draft,
    op_put_store,
    op_restock,
    op_rollback,
    op_stores,
    op_validate,
    op_version,
    op_versions,
)
from shopkeep.webhook_endpoints import (
    op_add_webhook,
    op_delete_webhook,
    op_deliveries_page,
    op_redeliver,
    op_rotate_secret,
    op_set_enabled,
    op_webhook,
    op_webhooks,
)

KEY = "contract-check-key-0001"
PARTS = ("products", "segments", "offers", "promo_codes", "risk")


@dataclasses.dataclass(frozen=True)
class SdkReader:
    """How the SDK reads a route's success body, and which part of the body that result holds
    (reshaped only where the SDK deliberately wraps or unwraps)."""

    parse: Callable[[httpx.Response], Any]
    wire: Callable[[Any], Any] = lambda body: body


def _page(key: str) -> Callable[[Any], Any]:
    return lambda body: {"items": body[key], "next_cursor": body["next_cursor"]}


_purchase_page = SdkReader(op_purchases_page(None, None, None).parse, _page("purchases"))
_ledger_page = SdkReader(op_ledger_page(None, None, None).parse, _page("entries"))
_purchase = SdkReader(op_get_purchase("id").parse, lambda body: body["purchase"])

SDK_READERS: dict[str, SdkReader] = {
    "player.get_catalog": SdkReader(lambda r: CatalogCache().operation().parse(r)),
    "player.get_stock": SdkReader(op_stock(()).parse, lambda body: body["stock"]),
    "player.get_wallet": SdkReader(op_wallet().parse),
    "player.get_ledger": _ledger_page,
    "player.get_inventory": SdkReader(op_inventory().parse),
    "player.create_purchase": SdkReader(lambda r: parse_purchase_result(r, KEY)),
    "player.list_purchases": _purchase_page,
    "player.get_purchase": _purchase,
    "player.consume": SdkReader(op_consume("sku", 1, KEY).parse),
    "holds.place_hold": SdkReader(op_place_hold("sku", 1, KEY).parse, lambda body: body["hold"]),
    "holds.get_hold": SdkReader(op_get_hold("id").parse, lambda body: body["hold"]),
    "holds.release_hold": SdkReader(op_release_hold("id").parse, lambda body: body["hold"]),
    "service.create_grant": SdkReader(
        op_grant(
            "p", currency="COINS", amount=1, sku=None, quantity=None, reason="r", key=KEY
        ).parse,
        lambda body: {**body, "inventory": {"items": body["inventory"]}},
    ),
    "offers.redeem_code": SdkReader(
        op_redeem_code("CODE", KEY).parse,
        lambda body: {**body, "inventory": {"items": body["inventory"]}},
    ),
    "service.refund": SdkReader(op_refund("id", reason="r", key=KEY).parse, _purchase.wire),
    "service.player_wallet": SdkReader(op_wallet("p").parse),
    "service.player_inventory": SdkReader(op_inventory("p").parse),
    "service.player_ledger": _ledger_page,
    "service.player_purchases": _purchase_page,
    "service.list_events": SdkReader(parse_event_page),
    # The studio's calls (shopkeep.studio.StudioClient): a draft's content is the body itself.
    "studio.get_draft": SdkReader(op_get_draft().parse, lambda body: {"content": body}),
    "studio.put_draft": SdkReader(op_put_draft({}, "*").parse, lambda body: {"content": body}),
    "studio.validate_catalog": SdkReader(op_validate({}, KEY).parse),
    "studio.publish": SdkReader(op_publish("", None, KEY).parse),
    "studio.rollback": SdkReader(op_rollback(1, KEY).parse),
    "studio.list_versions": SdkReader(op_versions().parse, lambda body: body["versions"]),
    "studio.get_version": SdkReader(
        op_version(1).parse,
        lambda body: {
            **{k: v for k, v in body.items() if k not in ("currencies", "items", *PARTS)},
            "content": {k: v for k, v in body.items() if k in ("currencies", "items", *PARTS)},
        },
    ),
    "studio.restock": SdkReader(op_restock("sku", 1, KEY).parse),
    # Webhook endpoints (StudioClient's webhook calls).
    "webhooks.create_webhook": SdkReader(op_add_webhook("u", [], "", KEY).parse),
    "webhooks.list_webhooks": SdkReader(op_webhooks().parse, lambda body: body["webhooks"]),
    "webhooks.get_webhook": SdkReader(op_webhook("id").parse, lambda body: body["webhook"]),
    "webhooks.delete_webhook": SdkReader(op_delete_webhook("id").parse),
    "webhooks.rotate_secret": SdkReader(op_rotate_secret("id", KEY).parse),
    "webhooks.disable_webhook": SdkReader(
        op_set_enabled("id", enabled=False, key=KEY).parse, lambda body: body["webhook"]
    ),
    "webhooks.enable_webhook": SdkReader(
        op_set_enabled("id", enabled=True, key=KEY).parse, lambda body: body["webhook"]
    ),
    "webhooks.list_deliveries": SdkReader(
        op_deliveries_page("id", None, None).parse, _page("deliveries")
    ),
    "webhooks.redeliver": SdkReader(
        op_redeliver("id", 1, None, KEY).parse, lambda body: body["queued"]
    ),
    # Real money in: the game's calls, and the studio's store settings.
    "receipts.redeem_receipt": SdkReader(lambda r: parse_receipt_result(r, KEY)),
    "receipts.open_steam_order": SdkReader(op_steam_order("p", "1", "en").parse),
    "receipts.list_stores": SdkReader(op_stores().parse, lambda body: body["stores"]),
    "receipts.put_store": SdkReader(op_put_store("app_store", {}).parse),
    # The risk controls of a studio's backend (shopkeep.risk).
    "risk.get_player_risk": SdkReader(op_player_risk("p").parse),
    "risk.freeze": SdkReader(op_freeze("p", frozen=True, reason="r", key=KEY).parse),
    "risk.unfreeze": SdkReader(op_freeze("p", frozen=False, reason="r", key=KEY).parse),
    "risk.set_tier": SdkReader(op_set_tier("p", tier=None, reason="r").parse),
}

# Operations the SDK has no call for: the operators' probes use them, and a studio member
# resets a mint breaker from the API (docs/api.md, "Risk").
NOT_IN_SDK = frozenset(
    {
        "ops.healthz",
        "ops.readyz",
        "ops.metrics",
        # The App Store calls it (App Store Server Notifications v2), never a game.
        "receipts.app_store_notification",
        # Google's Pub/Sub pushes it (Play's real-time developer notifications), never a game.
        "receipts.google_play_notification",
        # A studio's game backend sets segment attributes from its own code; the SDK is the
        # game's, and has no call for them yet.
        "offers.get_attributes",
        "offers.put_attributes",
        "risk.list_breakers",
        "risk.reset_breaker",
    }
)


def sdk_problems(endpoint: str, response: httpx.Response) -> list[str]:
    """What the SDK drops or misreads of ``response`` (nothing for a route it does not call)."""
    if response.status_code >= 400:
        return _error_problems(response)
    reader = SDK_READERS.get(endpoint)
    if reader is None or not response.content:
        return []
    try:
        parsed = reader.parse(response)
    except Exception as error:  # the SDK refusing a real body is exactly what is checked
        return [f"the parser refused the body: {error!r}"]
    if response.status_code == 304:
        return []
    return kept(reader.wire(response.json()), parsed, "body")


def _error_problems(response: httpx.Response) -> list[str]:
    body = response.json().get("error")
    if not isinstance(body, dict):
        return ["not the error envelope"]
    error = error_from_body(response.status_code, response.content)
    seen = {
        "code": error.code,
        "message": error.message,
        "details": dict(error.details),
        "request_id": error.request_id,
    }
    return [f"error.{k}: sent {body[k]!r}, SDK has {seen[k]!r}" for k in body if body[k] != seen[k]]


def kept(wire: Any, model: Any, where: str) -> list[str]:
    """Every field of ``wire`` is in ``model`` with the same value (in the SDK's own types:
    timestamps as datetimes, catalog amounts as Money, lists as tuples)."""
    if isinstance(model, Money):
        if isinstance(wire, Mapping):
            same = wire == {"currency": model.currency, "amount": model.minor}
        else:  # a currency's max_balance: the currency is the one it belongs to
            same = wire == model.minor
        return [] if same else [f"{where}: sent {wire!r}, SDK has {model!r}"]
    if dataclasses.is_dataclass(model) and not isinstance(model, type):
        if not isinstance(wire, Mapping):
            return [f"{where}: sent {wire!r}, SDK has {model!r}"]
        problems: list[str] = []
        for name, value in wire.items():
            if not hasattr(model, name):
                problems.append(f"{where}.{name}: dropped by {type(model).__name__}")
            else:
                problems += kept(value, getattr(model, name), f"{where}.{name}")
        return problems
    if isinstance(model, tuple | list):
        if not isinstance(wire, list) or len(wire) != len(model):
            return [f"{where}: sent {wire!r}, SDK has {model!r}"]
        return [
            p
            for i, (w, m) in enumerate(zip(wire, model, strict=True))
            for p in kept(w, m, f"{where}[{i}]")
        ]
    if isinstance(model, dt.datetime):
        same = isinstance(wire, str) and parse_time(wire) == model
        return [] if same else [f"{where}: sent {wire!r}, SDK has {model!r}"]
    if isinstance(model, str) and isinstance(wire, int) and not isinstance(wire, bool):
        # An opaque id the SDK keeps as str whatever JSON type carries it (LedgerEntry.id).
        same = model == str(wire)
    else:
        same = type(wire) is type(model) and wire == model
    return [] if same else [f"{where}: sent {wire!r}, SDK has {model!r}"]
