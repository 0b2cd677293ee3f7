"""The audit: every balance, stock and purchase explained by the append-only records."""

from __future__ import annotations

import psycopg

# (what is checked, a query returning one readable line per violation)
CHECKS: list[tuple[str, str]] = [
    (
        "wallet balance equals the sum of its ledger deltas",
        """
        SELECT format('wallet %s/%s/%s: balance %s but ledger sums to %s',
                      w.game_id, w.player_id, w.currency, w.balance, coalesce(l.total, 0))
          FROM wallets w
          LEFT JOIN (SELECT game_id, player_id, currency, sum(delta) AS total
                       FROM ledger_entries GROUP BY 1, 2, 3) l
            USING (game_id, player_id, currency)
         WHERE w.balance <> coalesce(l.total, 0)
        """,
    ),
    (
        "each ledger row's balance_after follows from the one before",
        """
        SELECT format('ledger %s/%s/%s entry %s: balance_after %s but running sum is %s',
                      game_id, player_id, currency, id, balance_after, running)
          FROM (SELECT *, sum(delta) OVER (PARTITION BY game_id, player_id, currency
                                           ORDER BY id) AS running
                  FROM ledger_entries) e
         WHERE balance_after <> running
        """,
    ),
    (
        "inventory equals the sum of its item-ledger deltas",
        """
        SELECT format('inventory %s/%s/%s: quantity %s but item ledger sums to %s',
                      i.game_id, i.player_id, i.sku, i.quantity, coalesce(l.total, 0))
          FROM inventories i
          LEFT JOIN (SELECT game_id, player_id, sku, sum(delta) AS total
                       FROM item_ledger GROUP BY 1, 2, 3) l USING (game_id, player_id, sku)
         WHERE i.quantity <> coalesce(l.total, 0)
        """,
    ),
    (
        "limited stock: initial + restocks - sold = remaining",
        """
        SELECT format('stock %s/%s: initial %s + restocked %s - sold %s = %s, but %s remain',
                      s.game_id, s.sku, s.initial, r.added, p.sold,
                      s.initial + r.added - p.sold, b.remaining)
          FROM stock_levels s
          CROSS JOIN LATERAL (SELECT coalesce(sum(added), 0) AS added FROM stock_restocks
                               WHERE game_id = s.game_id AND sku = s.sku) r
          CROSS JOIN LATERAL (SELECT coalesce(sum(quantity), 0) AS sold FROM purchases
                               WHERE game_id = s.game_id AND sku = s.sku) p
          CROSS JOIN LATERAL (SELECT coalesce(sum(remaining), 0) AS remaining FROM stock_buckets
                               WHERE game_id = s.game_id AND sku = s.sku) b
         WHERE s.initial + r.added - p.sold <> b.remaining
        """,
    ),
    (
        "every purchase paid exactly its price (and a refund returned it)",
        """
        SELECT format('purchase %s (%s/%s): charged %s %s, ledger shows %s; refunded %s',
                      p.id, p.game_id, p.player_id, p.total_price, p.currency,
                      -coalesce(paid.total, 0), coalesce(back.total, 0))
          FROM purchases p
          LEFT JOIN LATERAL (SELECT sum(delta) AS total FROM ledger_entries l
                              WHERE l.game_id = p.game_id AND l.player_id = p.player_id
                                AND l.reference = 'purchase:' || p.id AND l.currency = p.currency
                                AND l.delta < 0) paid ON true
          LEFT JOIN LATERAL (SELECT sum(delta) AS total FROM ledger_entries l
                              WHERE l.game_id = p.game_id AND l.player_id = p.player_id
                                AND l.reference = 'refund:' || p.id AND l.currency = p.currency
                                AND l.delta > 0) back ON true
         WHERE coalesce(-paid.total, 0) <> p.total_price
            OR coalesce(back.total, 0) <> CASE WHEN p.status = 'refunded' THEN p.total_price
                                               ELSE 0 END
        """,
    ),
    (
        "every purchase granted what it says, in the item ledger",
        """
        SELECT format('purchase %s (%s/%s): granted %s x %s, item ledger shows %s',
                      p.id, p.game_id, p.player_id, g.e->>'quantity', g.e->>'sku',
                      coalesce(l.total, 0))
          FROM purchases p
          CROSS JOIN LATERAL jsonb_array_elements(p.granted) AS g(e)
          LEFT JOIN LATERAL (SELECT sum(delta) AS total FROM item_ledger l
                              WHERE l.game_id = p.game_id AND l.player_id = p.player_id
                                AND l.sku = g.e->>'sku' AND l.reference = 'purchase:' || p.id) l
                 ON true
         WHERE g.e ? 'sku' AND coalesce(l.total, 0) <> (g.e->>'quantity')::bigint
        """,
    ),
    (
        "no purchase exceeds its item's per-player limit",
        """
        SELECT format('player %s/%s holds %s completed purchases of %s, limit %s',
                      c.game_id, c.player_id, c.bought, c.sku, i.per_player_limit)
          FROM (SELECT game_id, player_id, sku, sum(quantity) AS bought FROM purchases
                 WHERE status = 'completed' GROUP BY 1, 2, 3) c
          JOIN games g ON g.id = c.game_id
          JOIN catalog_items i ON i.version_id = g.live_version_id AND i.sku = c.sku
         WHERE i.per_player_limit IS NOT NULL AND c.bought > i.per_player_limit
        """,
    ),
]


def audit(conn: psycopg.Connection) -> list[str]:
    """Every violation found, as readable lines; an empty list means the books balance.
    Runs in one REPEATABLE READ snapshot (unless already inside a transaction), so a busy
    store is audited at one instant."""
    violations: list[str] = []
    fresh = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if fresh:  # inside a caller's transaction, the caller's snapshot is the one we get
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for title, query in CHECKS:
            for (line,) in conn.execute(query):
                violations.append(f"{title}: {line}")
    return violations
