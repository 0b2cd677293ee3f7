"""Steam: the ISteamMicroTxn flow through the Steam Web API, with the game's publisher key.

1. ``InitTxn`` (:func:`open_order`): the server opens an order for one product at the price the
   catalog's product gives for Steam; Steam shows the player the overlay;
2. the player approves it in the overlay;
3. the game redeems the order (``POST /v1/receipts`` ``{store: "steam", order_id}``):
   ``QueryTxn`` says whether it is approved, ``FinalizeTxn`` takes the money, and the receipt is
   credited under Steam's transaction id;
4. ``GetReport`` (polled, :func:`refunded_orders`) lists orders refunded or charged back since.

The API's base URL comes from the configuration, so a test can stand up a local Steam.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from ..config import Config
from ..errors import NotFound, ReceiptInvalid, StoreError, StoreUnavailable
from .store_accounts import StoreAccount

RETRY_AFTER = "5"

# QueryTxn / GetReport statuses that mean the money went back to the player.
REFUNDED = frozenset(
    {
        "Refunded",
        "PartialRefund",
        "Chargedback",
        "RefundedSuspectedFraud",
        "RefundedFriendlyFraud",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class SteamOrder:
    order_id: int
    trans_id: str
    item_id: str
    finalized: bool


def _unavailable(what: str) -> StoreError:
    return StoreUnavailable(
        f"Steam did not answer: {what}",
        details={"store": "steam"},
        headers={"Retry-After": RETRY_AFTER},
    )


def _url(account: StoreAccount, config: Config, method: str, version: int) -> str:
    interface = "ISteamMicroTxnSandbox" if account.settings.get("sandbox") else "ISteamMicroTxn"
    return f"{config.steam_api_url}/{interface}/{method}/v{version}/"


def _call(
    account: StoreAccount,
    config: Config,
    http_method: str,
    method: str,
    version: int,
    **params: Any,
) -> dict[str, Any]:
    """One Web API call; the ``response`` object when Steam says OK, else its error."""
    fields = {
        "key": account.secrets["publisher_key"],
        "appid": account.settings["app_id"],
        **params,
    }
    url = _url(account, config, method, version)
    try:
        if http_method == "GET":
            response = httpx.get(url, params=fields, timeout=config.store_timeout)
        else:
            response = httpx.post(url, data=fields, timeout=config.store_timeout)
    except httpx.HTTPError as error:
        raise _unavailable(type(error).__name__) from error
    if response.status_code != 200:
        raise _unavailable(f"{method} answered HTTP {response.status_code}")
    body: dict[str, Any] = response.json().get("response") or {}
    return body


def _refusal(body: dict[str, Any]) -> str:
    error = body.get("error") or {}
    return f"{error.get('errorcode', '?')}: {error.get('errordesc', 'no description')}"


def open_order(
    account: StoreAccount,
    config: Config,
    conn_run: Callable[[Callable[[psycopg.Connection], Any]], Any],
    *,
    game: str,
    player: str,
    steam_id: str,
    item_id: str,
    price: dict[str, Any],
    description: str,
    language: str,
) -> dict[str, Any]:
    """InitTxn for one unit of the product sold on Steam as ``item_id``; remembers who opened
    the order, so only that player redeems it."""
    order_id = secrets.randbits(63)
    body = _call(
        account,
        config,
        "POST",
        "InitTxn",
        3,
        orderid=order_id,
        steamid=steam_id,
        itemcount=1,
        language=language,
        currency=price["currency"],
        usersession="client",
        **{
            "itemid[0]": item_id,
            "qty[0]": 1,
            "amount[0]": price["amount"],
            "description[0]": description,
        },
    )
    if body.get("result") != "OK":
        raise ReceiptInvalid(
            f"Steam refused to open the order ({_refusal(body)})",
            details={"reason": "steam_refused"},
        )
    trans_id = str(body["params"]["transid"])

    def remember(conn: psycopg.Connection) -> None:
        conn.execute(
            "INSERT INTO steam_orders (game_id, order_id, player_id, steam_id, store_product_id,"
            " trans_id) VALUES (%s, %s, %s, %s, %s, %s)",
            (game, order_id, player, steam_id, item_id, trans_id),
        )

    conn_run(remember)
    return {"order_id": str(order_id), "trans_id": trans_id}


def order_owner(
    conn_run: Callable[[Callable[[psycopg.Connection], Any]], Any],
    game: str,
    order_id: str,
) -> tuple[str, str | None]:
    """Who opened the Steam order ``order_id`` of ``game`` and Steam's transaction id for it
    (InitTxn's): only that player may redeem it. 404 for an order this game never opened."""

    def owner(conn: psycopg.Connection) -> tuple[str, str | None] | None:
        row = conn.execute(
            "SELECT player_id, trans_id FROM steam_orders WHERE game_id = %s AND order_id = %s",
            (game, int(order_id)),
        ).fetchone()
        return None if row is None else (str(row[0]), row[1])

    found: tuple[str, str | None] | None = conn_run(owner)
    if found is None:
        raise NotFound("no Steam order of this game has this id")
    return found


def query_order(account: StoreAccount, config: Config, *, order_id: str) -> SteamOrder:
    """QueryTxn: the order if the player approved it (finalized or not yet)."""
    body = _call(account, config, "GET", "QueryTxn", 3, orderid=order_id)
    if body.get("result") != "OK":
        raise ReceiptInvalid(
            f"Steam knows no such order ({_refusal(body)})", details={"reason": "unknown_order"}
        )
    params = body["params"]
    status = params.get("status")
    if status == "Init":
        raise ReceiptInvalid(
            "the player has not approved the order in the Steam overlay yet",
            details={"reason": "pending"},
        )
    if status in REFUNDED:
        raise ReceiptInvalid("Steam refunded this order", details={"reason": "revoked"})
    if status not in ("Approved", "Succeeded"):
        raise ReceiptInvalid(f"the order was not paid ({status})", details={"reason": "cancelled"})
    items = params.get("items") or []
    if len(items) != 1:
        raise ReceiptInvalid("the order is not one product", details={"reason": "malformed"})
    return SteamOrder(
        order_id=int(order_id),
        trans_id=str(params["transid"]),
        item_id=str(items[0]["itemid"]),
        finalized=status == "Succeeded",
    )


def finalize(account: StoreAccount, config: Config, order: SteamOrder) -> None:
    """FinalizeTxn: Steam takes the player's money."""
    body = _call(account, config, "POST", "FinalizeTxn", 2, orderid=order.order_id)
    if body.get("result") != "OK":
        raise ReceiptInvalid(
            f"Steam could not complete the payment ({_refusal(body)})",
            details={"reason": "cancelled"},
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RefundedOrder:
    trans_id: str
    status: str
    time: str


def refunded_orders(
    account: StoreAccount, config: Config, *, since: str
) -> tuple[list[RefundedOrder], str]:
    """GetReport since ``since`` (RFC 3339): the orders refunded or charged back, and the time
    to ask from next."""
    body = _call(
        account, config, "GET", "GetReport", 5, type="GAMESALES", time=since, maxresults=1000
    )
    if body.get("result") != "OK":
        raise _unavailable(f"GetReport refused: {_refusal(body)}")
    orders = (body.get("params") or {}).get("orders") or []
    latest = max([since, *(str(o.get("time") or since) for o in orders)])
    refunded = [
        RefundedOrder(str(o["transid"]), str(o["status"]), str(o.get("time") or ""))
        for o in orders
        if o.get("status") in REFUNDED
    ]
    return refunded, latest
