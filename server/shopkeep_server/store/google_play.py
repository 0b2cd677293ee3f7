"""Google Play: one-time products checked with the Google Play Developer API
(``purchases.products.get``), acknowledged (``purchases.products.acknowledge``), and taken
back when they show up in ``purchases.voidedpurchases``. Calls are made as the game's service
account (``google-auth``, scope androidpublisher); the API's and the token endpoint's base URLs
come from the configuration, so a test can stand up a local Google."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any
from urllib.parse import quote

import google.auth.exceptions
import google.auth.transport.requests
import httpx
from google.oauth2 import service_account

from ..config import Config
from ..errors import ReceiptInvalid, StoreError, StoreUnavailable
from .store_accounts import StoreAccount

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
RETRY_AFTER = "5"

# ProductPurchase.purchaseState
PURCHASED, CANCELLED, PENDING = 0, 1, 2


@dataclasses.dataclass(frozen=True, slots=True)
class PlayPurchase:
    order_id: str
    product_id: str
    token: str
    acknowledged: bool


def _unavailable(what: str) -> StoreError:
    return StoreUnavailable(
        f"Google Play did not answer: {what}",
        details={"store": "google_play"},
        headers={"Retry-After": RETRY_AFTER},
    )


def _access_token(account: StoreAccount, config: Config) -> str:
    info = dict(account.secrets["service_account"])
    if config.google_token_url:
        info["token_uri"] = config.google_token_url
    credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    try:
        credentials.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.GoogleAuthError as error:
        log.warning("google play: no access token for %s: %s", account.game, error)
        raise _unavailable("no access token for the service account") from error
    token: str = credentials.token
    return token


def _purchase_url(account: StoreAccount, config: Config, product_id: str, token: str) -> str:
    package = quote(account.settings["package_name"], safe="")
    return (
        f"{config.google_play_api_url}/androidpublisher/v3/applications/{package}"
        f"/purchases/products/{quote(product_id, safe='')}/tokens/{quote(token, safe='')}"
    )


def _call(
    account: StoreAccount, config: Config, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {_access_token(account, config)}"}
    try:
        response = httpx.request(
            method, url, headers=headers, timeout=config.store_timeout, **kwargs
        )
    except httpx.HTTPError as error:
        raise _unavailable(type(error).__name__) from error
    if response.status_code >= 500 or response.status_code == 429:
        raise _unavailable(f"HTTP {response.status_code}")
    if response.status_code in (401, 403):
        # Our credentials, not the player's proof: the studio must fix the account.
        log.error("google play refused the service account of %s", account.game)
        raise _unavailable("the service account was refused")
    return response


def check_purchase(
    account: StoreAccount, config: Config, *, product_id: str, token: str
) -> PlayPurchase:
    """The purchase ``token`` of ``product_id``, if Google says it is paid for."""
    response = _call(account, config, "GET", _purchase_url(account, config, product_id, token))
    if response.status_code in (400, 404, 410):
        raise ReceiptInvalid(
            "Google Play knows no such purchase", details={"reason": "unknown_purchase"}
        )
    if response.status_code != 200:
        raise _unavailable(f"HTTP {response.status_code}")
    body = response.json()
    state = body.get("purchaseState")
    if state == PENDING:
        raise ReceiptInvalid(
            "the payment is still pending: send the receipt again once it completes",
            details={"reason": "pending"},
        )
    if state != PURCHASED:
        raise ReceiptInvalid("the purchase was cancelled", details={"reason": "cancelled"})
    return PlayPurchase(
        # Test purchases of licence testers carry no orderId; their token is unique too.
        order_id=str(body.get("orderId") or f"token:{token}"),
        product_id=product_id,
        token=token,
        acknowledged=body.get("acknowledgementState") == 1,
    )


def acknowledge(account: StoreAccount, config: Config, purchase: PlayPurchase) -> None:
    """Tells Google the purchase is delivered (unacknowledged ones are refunded in 3 days)."""
    url = _purchase_url(account, config, purchase.product_id, purchase.token) + ":acknowledge"
    response = _call(account, config, "POST", url, json={})
    if response.status_code >= 300:
        raise _unavailable(f"acknowledge answered HTTP {response.status_code}")


@dataclasses.dataclass(frozen=True, slots=True)
class VoidedPurchase:
    order_id: str
    voided_at_ms: int
    reason: str


def voided_purchases(
    account: StoreAccount, config: Config, *, since_ms: int
) -> list[VoidedPurchase]:
    """Every purchase Google voided (refund, chargeback, revocation) since ``since_ms``,
    all pages."""
    package = quote(account.settings["package_name"], safe="")
    url = (
        f"{config.google_play_api_url}/androidpublisher/v3/applications/{package}"
        "/purchases/voidedpurchases"
    )
    found: list[VoidedPurchase] = []
    page: str | None = None
    while True:
        params: dict[str, Any] = {"startTime": since_ms, "maxResults": 1000}
        if page:
            params["token"] = page
        response = _call(account, config, "GET", url, params=params)
        if response.status_code != 200:
            raise _unavailable(f"voidedpurchases answered HTTP {response.status_code}")
        body = response.json()
        for entry in body.get("voidedPurchases") or ():
            found.append(
                VoidedPurchase(
                    order_id=str(entry.get("orderId") or f"token:{entry['purchaseToken']}"),
                    voided_at_ms=int(entry["voidedTimeMillis"]),
                    reason=f"google_play voided ({entry.get('voidedReason', 'unknown')})",
                )
            )
        page = (body.get("tokenPagination") or {}).get("nextPageToken")
        if not page:
            return found
