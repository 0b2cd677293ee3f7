"""What the stores take back: App Store Server Notifications (REFUND, REVOKE), Google Play's
voided purchases (polled, and pushed as real-time developer notifications) and Steam's refunded
or charged-back orders. Each becomes one
``sk_chargeback`` (sql/64_receipts.sql): what the receipt granted is taken back as far as the
player still has it, the rest is recorded as debt that blocks purchases until a top-up repays
it. Once per receipt, so a notification Apple sends twice, or a report polled twice, changes
nothing the second time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import psycopg

from ..config import Config
from ..errors import StoreError, ValidationFailed
from . import app_store, google_play, risk, steam
from .receipts import Runner
from .store_accounts import StoreAccount, accounts_on, load_account, save_poll_cursor

log = logging.getLogger(__name__)


def take_back(
    conn: psycopg.Connection,
    game: str,
    store: str,
    transaction_id: str,
    *,
    source: str,
    reason: str,
) -> dict[str, Any] | None:
    """Claws back the receipt of ``transaction_id``; None when this game never credited it."""
    row = conn.execute(
        "SELECT sk_chargeback(%s, %s, %s, %s, %s)", (game, store, transaction_id, source, reason)
    ).fetchone()
    assert row is not None
    found: dict[str, Any] | None = row[0]
    if found is not None and found["policy"] == "freeze":
        # The game's policy: besides the debt, the player is frozen (the risk controls' freeze,
        # in this transaction) until a studio member or the service unfreezes it.
        risk.freeze(
            conn,
            game,
            found["player_id"],
            actor=f"store:{store}",
            reason=f"{source}: transaction {transaction_id} taken back ({reason})",
        )
    if found is not None:
        log.info(
            "chargeback of %s %s in %s: took %s, owed %s",
            store,
            transaction_id,
            game,
            found["taken"],
            found["owed"],
        )
    return found


def app_store_notification(run: Runner[Any], game: str, signed_payload: str) -> dict[str, Any]:
    """An App Store Server Notification v2 for ``game``: verified with the game's App Store
    settings, then a REFUND or REVOKE takes its transaction back. Other types are accepted
    and ignored (Apple resends a notification that is not answered 200)."""
    account = run(lambda conn: load_account(conn, game, "app_store"))
    notification = app_store.verify_notification(account, signed_payload)
    chargeback = None
    if notification.take_back is not None and notification.transaction_id is not None:
        transaction_id = notification.transaction_id
        chargeback = run(
            lambda conn: take_back(
                conn,
                game,
                "app_store",
                transaction_id,
                source="app_store_notification",
                reason=f"app_store {notification.take_back}",
            )
        )
    return {
        "notification_type": notification.notification_type,
        "transaction_id": notification.transaction_id,
        "taken_back": chargeback is not None,
    }


def google_play_notification(
    run: Runner[Any],
    config: Config,
    game: str,
    authorization: str | None,
    envelope: dict[str, Any],
) -> dict[str, Any]:
    """A Google Play real-time developer notification for ``game``, pushed by Cloud Pub/Sub:
    the push token is verified first (unauthenticated otherwise, nothing changed), then a
    voided purchase is taken back as the polled job takes it back (:func:`take_back`, once per
    receipt, so a notification Pub/Sub delivers again changes nothing). A one-time product's
    notification (purchased, pending purchase cancelled) and a test notification are
    acknowledged: the game redeems purchases itself. Subscriptions are not sold here."""
    account = run(lambda conn: load_account(conn, game, "google_play"))
    google_play.verify_push(account, config, authorization)
    notification = google_play.parse_push(envelope)
    if notification.package_name != account.settings["package_name"]:
        raise ValidationFailed(
            details={"message.data": [f"not a notification of {account.settings['package_name']}"]}
        )
    chargeback = None
    if notification.transaction_id is not None and notification.reason is not None:
        transaction_id, reason = notification.transaction_id, notification.reason
        chargeback = run(
            lambda conn: take_back(
                conn,
                game,
                "google_play",
                transaction_id,
                source="google_play_notification",
                reason=reason,
            )
        )
    return {
        "notification_type": notification.kind,
        "transaction_id": notification.transaction_id,
        "taken_back": chargeback is not None,
    }


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def poll_google_play(conn: psycopg.Connection, config: Config, account: StoreAccount) -> int:
    """Reads one game's voided purchases since its cursor (at first, 30 days back: as far as
    Google keeps them) and takes them back, in one transaction with the new cursor; returns
    how many receipts were taken back now."""
    since = (
        int(account.poll_cursor)
        if account.poll_cursor
        else _ms(dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    )
    voided = google_play.voided_purchases(account, config, since_ms=since)
    taken = 0
    with conn.transaction():
        for entry in voided:
            source, reason = "google_play_voided", entry.reason
            if take_back(conn, account.game, "google_play", entry.order_id, source=source,
                         reason=reason):  # fmt: skip
                taken += 1
        latest = max([since, *(entry.voided_at_ms for entry in voided)])
        save_poll_cursor(conn, account.game, "google_play", str(latest))
    return taken


def poll_steam(conn: psycopg.Connection, config: Config, account: StoreAccount) -> int:
    """Reads one game's Steam report since its cursor and takes back what Steam refunded, in
    one transaction with the new cursor; returns how many receipts were taken back now."""
    since = account.poll_cursor or (
        (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    refunded, latest = steam.refunded_orders(account, config, since=since)
    taken = 0
    with conn.transaction():
        for order in refunded:
            reason = f"steam {order.status}"
            if take_back(conn, account.game, "steam", order.trans_id, source="steam_report",
                         reason=reason):  # fmt: skip
                taken += 1
        save_poll_cursor(conn, account.game, "steam", latest)
    return taken


POLLS = {"google_play": poll_google_play, "steam": poll_steam}


@dataclasses.dataclass(frozen=True, slots=True)
class Polled:
    """One game's poll of one store: how many receipts it took back, or why it could not."""

    store: str
    game: str
    taken: int
    error: str | None = None


def poll_all(conn: psycopg.Connection, config: Config) -> list[Polled]:
    """Polls every game on every polled store; a store that does not answer for one game
    changes nothing for that game and does not stop the others."""
    results: list[Polled] = []
    for store, poll in POLLS.items():
        for account in accounts_on(conn, store):
            try:
                results.append(Polled(store, account.game, poll(conn, config, account)))
            except StoreError as error:
                results.append(Polled(store, account.game, 0, error.message))
    return results
