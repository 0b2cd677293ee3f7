"""Receipts: a player's proof that an app store was paid, credited exactly once.

A redemption is four short steps, never one long transaction around a call to a store:

1. the idempotency key's stored outcome, read without claiming it: a replay never asks the
   store again; without one, a frozen player is refused (``account_frozen``, not stored)
   before the store is asked, so the proof stays unconfirmed there and redeems once the
   player is unfrozen;
2. the store checks the proof (App Store offline, Google Play and Steam over HTTP). A store that
   does not answer is ``store_unavailable`` (503, Retry-After) and nothing has changed;
3. the product must be one of the live catalog's (and a hold the request names one that
   product converts), and only then does the store hear that the purchase is taken (Google's
   acknowledge, Steam's FinalizeTxn): a proof that cannot be credited is left unacknowledged;
4. ``sk_redeem_receipt`` (sql/64_receipts.sql) credits it with its ledger rows and stores the
   outcome with the key, in one statement; the unique (game, store, transaction) makes a
   second credit impossible whoever sends it, and whenever.

A Steam order another player opened is refused before step 2 (receipt_already_used, stored
with the key, as sk_redeem_receipt stores any cross-player reuse).

A crash between 3 and 4 loses nothing: the client re-sends the same request with the same key
(the SDK's journal does), the store says the purchase is already acknowledged or finalized, and
step 4 runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from ..config import Config
from ..errors import IdempotencyKeyReused, ReceiptAlreadyUsed, ReceiptInvalid
from . import app_store, google_play, steam
from .idempotency import (
    KEY_ARGS,
    IdempotencyKey,
    Outcome,
    domain_errors,
    key_params,
    run_once,
    run_operation,
)
from .store_accounts import StoreAccount, load_account

T = TypeVar("T")
# Runs one unit of store work on a pooled connection (runtime.with_connection).
Runner = Callable[[Callable[[psycopg.Connection], T]], T]


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedPurchase:
    """What a store vouched for. ``confirm`` tells the store the purchase is taken (run once the
    product is known to the catalog, before the credit); None when the store needs nothing."""

    store: str
    transaction_id: str
    store_product_id: str
    confirm: Callable[[], None] | None = None


def verify(account: StoreAccount, proof: dict[str, Any], config: Config) -> VerifiedPurchase:
    """Asks the proof's store; raises receipt_invalid or store_unavailable."""
    store = account.store
    if store == "app_store":
        found = app_store.verify_transaction(account, proof["signed_transaction"])
        return VerifiedPurchase(store, found.transaction_id, found.product_id)
    if store == "google_play":
        purchase = google_play.check_purchase(
            account, config, product_id=proof["product_id"], token=proof["purchase_token"]
        )
        return VerifiedPurchase(
            store,
            purchase.order_id,
            purchase.product_id,
            confirm=None
            if purchase.acknowledged
            else lambda: google_play.acknowledge(account, config, purchase),
        )
    order = steam.query_order(account, config, order_id=proof["order_id"])
    return VerifiedPurchase(
        store,
        order.trans_id,
        order.item_id,
        confirm=None if order.finalized else lambda: steam.finalize(account, config, order),
    )


def stored_outcome(
    conn: psycopg.Connection, game: str, player: str, key: IdempotencyKey
) -> Outcome | None:
    """The outcome stored with this key, if any, without claiming the key (that is
    sk_redeem_receipt's, in the transaction that credits)."""
    row = conn.execute(
        "SELECT fingerprint, status, response_body FROM idempotency_keys"
        " WHERE game_id = %s AND subject = %s AND key = %s",
        (game, player, key.value),
    ).fetchone()
    if row is None:
        return None
    fingerprint, status, body = row
    if fingerprint != key.fingerprint:
        raise IdempotencyKeyReused()
    return None if status is None else Outcome(status=status, body=body, replayed=True)


def frozen_refusal(
    conn: psycopg.Connection, game: str, player: str, key: IdempotencyKey
) -> Outcome | None:
    """403 account_frozen when the player is frozen (recorded as a refused `receipt`, as
    sk_risk_admit records every operation's), else None. sk_redeem_receipt asks again in the
    transaction that credits, for a freeze that comes after this look."""
    row = conn.execute(
        "SELECT status, body FROM sk_risk_admit(%s, %s, %s, %s, 'receipt', %s)",
        (game, player, player, key.value, key.request_id),
    ).fetchone()
    assert row is not None
    return None if row[0] is None else Outcome(status=row[0], body=row[1], replayed=False)


def product_of(
    conn: psycopg.Connection,
    game: str,
    player: str,
    store: str,
    store_product_id: str,
    *,
    hold_id: str | None = None,
) -> str:
    """The live catalog's product sold on ``store`` as ``store_product_id``; with ``hold_id``,
    the player's hold must be one that product converts (sk_receipt_hold: 404, or 422 on
    ``hold_id``), and without one the product must grant no limited item
    (sk_receipt_without_hold: 422 on ``hold_id``), so a proof that cannot be credited is left
    unconfirmed at the store."""
    with domain_errors():
        row = conn.execute(
            "SELECT p.product_id, CASE WHEN %s::uuid IS NOT NULL"
            " THEN (sk_receipt_hold(g.id, %s, %s::uuid, p.product_id, p.grants)).id::text"
            " ELSE sk_receipt_without_hold(g.live_version_id, p.product_id, p.grants)::text END"
            " FROM games g JOIN catalog_products p"
            " ON p.version_id = g.live_version_id WHERE g.id = %s AND p.store = %s"
            " AND p.store_product_id = %s",
            (hold_id, player, hold_id, game, store, store_product_id),
        ).fetchone()
    if row is None:
        raise ReceiptInvalid(
            f"no product of the live catalog is {store_product_id} on {store}",
            details={"reason": "unknown_product"},
        )
    product: str = row[0]
    return product


def refuse_used(
    conn: psycopg.Connection,
    game: str,
    player: str,
    key: IdempotencyKey,
    *,
    store: str,
    transaction_id: str | None,
) -> Outcome:
    """receipt_already_used, stored with the key like sk_redeem_receipt's (a replay answers the
    same), for a proof the server knows is another player's before asking the store."""

    def refuse(_: psycopg.Connection) -> tuple[int, Any]:
        raise ReceiptAlreadyUsed(
            "this store transaction belongs to another player",
            details={"store": store, "transaction_id": transaction_id},
        )

    return run_once(conn, game, player, key, refuse)


_REDEEM = (
    "SELECT status, body, replayed FROM sk_redeem_receipt(" + KEY_ARGS + ", %s, %s, %s, %s::uuid)"
)


def credit(
    conn: psycopg.Connection,
    game: str,
    player: str,
    purchase: VerifiedPurchase,
    *,
    key: IdempotencyKey,
    hold_id: str | None = None,
) -> Outcome:
    """Credits a verified purchase, exactly once (sk_redeem_receipt lists its checks); with
    ``hold_id`` it is the purchase of that hold's units (the hold is consumed)."""
    return run_operation(
        conn,
        _REDEEM,
        (
            *key_params(game, player, key),
            purchase.store,
            purchase.transaction_id,
            purchase.store_product_id,
            hold_id,
        ),
    )


def redeem(
    run: Runner[Any],
    config: Config,
    game: str,
    player: str,
    proof: dict[str, Any],
    *,
    key: IdempotencyKey,
) -> Outcome:
    """Redeems ``proof`` (the request body: ``store`` and that store's fields) for ``player``,
    in the four steps of this module's docstring."""
    stored: Outcome | None = run(lambda conn: stored_outcome(conn, game, player, key))
    if stored is not None:
        return stored
    frozen: Outcome | None = run(lambda conn: frozen_refusal(conn, game, player, key))
    if frozen is not None:
        return frozen
    account: StoreAccount = run(lambda conn: load_account(conn, game, proof["store"]))
    if proof["store"] == "steam":
        owner, trans_id = steam.order_owner(run, game, proof["order_id"])
        if owner != player:
            # Another player's order is another player's purchase: refused as any cross-player
            # reuse is (a final 409 stored with the key), before Steam is asked or finalizes.
            refused: Outcome = run(
                lambda conn: refuse_used(
                    conn, game, player, key, store="steam", transaction_id=trans_id
                )
            )
            return refused
    purchase = verify(account, proof, config)
    hold_id = str(proof["hold_id"]) if proof.get("hold_id") is not None else None
    run(
        lambda conn: product_of(
            conn, game, player, purchase.store, purchase.store_product_id, hold_id=hold_id
        )
    )
    if purchase.confirm is not None:
        purchase.confirm()
    outcome: Outcome = run(
        lambda conn: credit(conn, game, player, purchase, key=key, hold_id=hold_id)
    )
    return outcome
