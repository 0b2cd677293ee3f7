"""Google Play: one-time products checked with the Google Play Developer API
(``purchases.products.get``), acknowledged (``purchases.products.acknowledge``), and taken
back when they show up in ``purchases.voidedpurchases`` (polled) or in a real-time developer
notification (Cloud Pub/Sub push: :func:`verify_push`, :func:`parse_push`). Calls are made as
the game's service account (``google-auth``, scope androidpublisher); the API's, the token
endpoint's and the push certificates' URLs come from the configuration, so a test can stand up
a local Google."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
from typing import Any
from urllib.parse import quote

import google.auth.exceptions
import google.auth.transport.requests
import httpx
from google.oauth2 import id_token, service_account

from ..config import Config
from ..errors import (
    ReceiptInvalid,
    StoreError,
    StoreUnavailable,
    Unauthenticated,
    ValidationFailed,
)
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
        order_id=transaction_id_of(body.get("orderId"), token),
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
                    order_id=transaction_id_of(entry.get("orderId"), entry["purchaseToken"]),
                    voided_at_ms=int(entry["voidedTimeMillis"]),
                    reason=f"google_play voided ({entry.get('voidedReason', 'unknown')})",
                )
            )
        page = (body.get("tokenPagination") or {}).get("nextPageToken")
        if not page:
            return found


def transaction_id_of(order_id: str | None, token: str) -> str:
    """The transaction id a Google purchase is credited under: its order id, or for a licence
    tester's purchase (no order id) its token. Receipts, voided purchases and notifications all
    name a purchase by this."""
    return str(order_id) if order_id else f"token:{token}"


# --- Real-time developer notifications (Cloud Pub/Sub push) -----------------------------------

# Who signs a Pub/Sub push request's OIDC token.
PUSH_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})


def verify_push(account: StoreAccount, config: Config, authorization: str | None) -> None:
    """Checks that a push request comes from the game's Pub/Sub subscription: the OIDC token in
    ``Authorization: Bearer`` is verified with google-auth against the configured certificates
    (signature, expiry, the game's ``pubsub_audience``), then it must be Google's and name the
    game's ``pubsub_service_account`` as a verified e-mail. Raises unauthenticated otherwise."""
    audience = account.settings.get("pubsub_audience")
    email = account.settings.get("pubsub_service_account")
    if not audience or not email:
        raise Unauthenticated("this game takes no Google Play notifications (no Pub/Sub settings)")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("a Pub/Sub push token is required")
    try:
        claims = id_token.verify_token(
            token,
            google.auth.transport.requests.Request(),
            audience=audience,
            certs_url=config.google_pubsub_certs_url,
        )
    except (ValueError, google.auth.exceptions.GoogleAuthError) as error:
        log.warning("google play notification for %s refused: %s", account.game, error)
        raise Unauthenticated("the Pub/Sub push token does not verify") from error
    if (
        claims.get("iss") not in PUSH_ISSUERS
        or claims.get("email") != email
        or claims.get("email_verified") is not True
    ):
        log.warning("google play notification for %s from %s refused", account.game, claims)
        raise Unauthenticated("the Pub/Sub push token is not the game's subscription's")


@dataclasses.dataclass(frozen=True, slots=True)
class PlayNotification:
    """One DeveloperNotification: ``kind`` is its payload's field (``voidedPurchaseNotification``,
    ``oneTimeProductNotification``, ``testNotification``, ``subscriptionNotification``, ...);
    ``transaction_id`` names the purchase a voided purchase took back."""

    kind: str
    package_name: str
    transaction_id: str | None = None
    reason: str | None = None
    product_notification_type: int | None = None


NOTIFICATION_KINDS = (
    "voidedPurchaseNotification",
    "oneTimeProductNotification",
    "subscriptionNotification",
    "testNotification",
)


def parse_push(envelope: dict[str, Any]) -> PlayNotification:
    """The DeveloperNotification inside a Pub/Sub push envelope
    (``{"message": {"data": base64(JSON), "messageId", ...}, "subscription"}``); a message that
    is not one is validation_failed."""
    try:
        raw = base64.b64decode(envelope["message"]["data"], validate=True)
        payload = json.loads(raw)
        package = payload["packageName"]
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise ValidationFailed(
            details={"message.data": ["not a base64 DeveloperNotification"]}
        ) from error
    if not isinstance(payload, dict) or not isinstance(package, str):
        raise ValidationFailed(details={"message.data": ["not a DeveloperNotification"]})
    kind = next((name for name in NOTIFICATION_KINDS if name in payload), "unknown")
    body = payload.get(kind) or {}
    if kind == "voidedPurchaseNotification":
        token = body.get("purchaseToken")
        if not isinstance(token, str) or not token:
            raise ValidationFailed(details={"message.data": ["a voided purchase needs its token"]})
        return PlayNotification(
            kind,
            package,
            transaction_id=transaction_id_of(body.get("orderId"), token),
            reason=f"google_play voided (refund type {body.get('refundType', 'unknown')})",
        )
    if kind == "oneTimeProductNotification":
        return PlayNotification(
            kind, package, product_notification_type=body.get("notificationType")
        )
    return PlayNotification(kind, package)
