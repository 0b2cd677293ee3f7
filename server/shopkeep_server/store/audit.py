"""The audit: every balance, stock and purchase explained by the append-only records."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from shopkeep.catalog_diff import format_money


def _line(row: Mapping[str, Any]) -> str:
    return str(row["line"])


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """What is checked, a query returning one row per violation, and that row as a readable
    line (by default the query's own ``line`` column; money is formatted here, in Python)."""

    title: str
    query: str
    line: Callable[[Mapping[str, Any]], str] = _line
    # Tables the query reads that a store migrated by an older release lacks (audited before
    # its upgrade): without them the check runs ``fallback`` instead, or is skipped.
    needs: tuple[str, ...] = ()
    fallback: str | None = None

    def query_for(self, tables: set[str]) -> str | None:
        """The query to run on a schema with ``tables``, or None to skip the check."""
        return self.query if set(self.needs) <= tables else self.fallback


# The scale of ``currency`` in ``game``: the newest published one (a published currency keeps
# its scale, and a wallet's currency was published, even if a later version dropped it).
# A purchase's ledger rows: its reference is `purchase:<id>`, with `:offer:<offer id>` after
# it when an offer priced it (sk_purchase_reference); written without the offer_id column so
# the audit also reads a store from before offers.
_PURCHASE_REFERENCE = (
    "(l.reference = 'purchase:' || p.id"
    " OR starts_with(l.reference, 'purchase:' || p.id || ':offer:'))"
)
_SCALE = """(SELECT cc.scale FROM catalog_currencies cc
              JOIN catalog_versions v ON v.id = cc.version_id
             WHERE v.game_id = {game} AND cc.code = {currency}
             ORDER BY v.version DESC LIMIT 1) AS scale"""


def _money(row: Mapping[str, Any], column: str) -> str:
    """``0.0150 USD (150)``: the amount people read and the minor units the rows hold."""
    amount = row[column]
    if isinstance(amount, Decimal) and amount == amount.to_integral_value():
        amount = int(amount)  # SQL's sum() of bigints is numeric: a whole number, exactly
    return format_money(amount, row["currency"], {row["currency"]: row["scale"]})


CHECKS: list[Check] = [
    Check(
        "wallet balance equals the sum of its ledger deltas",
        f"""
        SELECT w.game_id, w.player_id, w.currency, w.balance, coalesce(l.total, 0) AS ledger,
               {_SCALE.format(game="w.game_id", currency="w.currency")}
          FROM wallets w
          LEFT JOIN (SELECT game_id, player_id, currency, sum(delta) AS total
                       FROM ledger_entries GROUP BY 1, 2, 3) l
            USING (game_id, player_id, currency)
         WHERE w.balance <> coalesce(l.total, 0)
        """,
        lambda r: (
            f"wallet {r['game_id']}/{r['player_id']}/{r['currency']}: balance"
            f" {_money(r, 'balance')} but ledger sums to {_money(r, 'ledger')}"
        ),
    ),
    Check(
        "each ledger row's balance_after follows from the one before",
        f"""
        SELECT e.game_id, e.player_id, e.currency, e.id, e.balance_after, e.running,
               {_SCALE.format(game="e.game_id", currency="e.currency")}
          FROM (SELECT *, sum(delta) OVER (PARTITION BY game_id, player_id, currency
                                           ORDER BY id) AS running
                  FROM ledger_entries) e
         WHERE e.balance_after <> e.running
        """,
        lambda r: (
            f"ledger {r['game_id']}/{r['player_id']}/{r['currency']} entry {r['id']}:"
            f" balance_after {_money(r, 'balance_after')} but running sum is"
            f" {_money(r, 'running')}"
        ),
    ),
    Check(
        "inventory equals the sum of its item-ledger deltas",
        """
        SELECT format('inventory %s/%s/%s: quantity %s but item ledger sums to %s',
                      i.game_id, i.player_id, i.sku, i.quantity, coalesce(l.total, 0)) AS line
          FROM inventories i
          LEFT JOIN (SELECT game_id, player_id, sku, sum(delta) AS total
                       FROM item_ledger GROUP BY 1, 2, 3) l USING (game_id, player_id, sku)
         WHERE i.quantity <> coalesce(l.total, 0)
        """,
    ),
    # A hold is not a sale: its units are out of the buckets while it is active, and they are
    # sold when it is consumed (by the purchase or receipt it names), so a purchase made with a
    # hold is counted once, as its consumed hold.
    Check(
        "limited stock: initial + restocks - sold - held = remaining",
        """
        SELECT format('stock %s/%s: initial %s + restocked %s - sold %s - held %s = %s,'
                      ' but %s remain', s.game_id, s.sku, s.initial, r.added, p.sold + c.sold,
                      h.held, s.initial + r.added - p.sold - c.sold - h.held,
                      b.remaining) AS line
          FROM stock_levels s
          CROSS JOIN LATERAL (SELECT coalesce(sum(added), 0) AS added FROM stock_restocks
                               WHERE game_id = s.game_id AND sku = s.sku) r
          CROSS JOIN LATERAL (SELECT coalesce(sum(quantity), 0) AS sold FROM purchases pu
                               WHERE pu.game_id = s.game_id AND pu.sku = s.sku
                                 AND NOT EXISTS (
                                     SELECT FROM holds ho
                                      WHERE ho.game_id = pu.game_id
                                        AND ho.player_id = pu.player_id
                                        AND ho.consumed_by = 'purchase:' || pu.id)) p
          CROSS JOIN LATERAL (SELECT coalesce(sum(quantity), 0) AS sold FROM holds
                               WHERE game_id = s.game_id AND sku = s.sku
                                 AND status = 'consumed') c
          CROSS JOIN LATERAL (SELECT coalesce(sum(quantity), 0) AS held FROM holds
                               WHERE game_id = s.game_id AND sku = s.sku
                                 AND status = 'active') h
          CROSS JOIN LATERAL (SELECT coalesce(sum(remaining), 0) AS remaining FROM stock_buckets
                               WHERE game_id = s.game_id AND sku = s.sku) b
         WHERE s.initial + r.added - p.sold - c.sold - h.held <> b.remaining
        """,
        needs=("holds",),
        fallback="""
        SELECT format('stock %s/%s: initial %s + restocked %s - sold %s = %s, but %s remain',
                      s.game_id, s.sku, s.initial, r.added, p.sold,
                      s.initial + r.added - p.sold, b.remaining) AS line
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
    Check(
        "a hold consumed by a purchase was consumed by that player's purchase of its units",
        """
        SELECT format('hold %s (%s/%s, %s x %s) consumed by %s, which %s',
                      h.id, h.game_id, h.player_id, h.quantity, h.sku, h.consumed_by,
                      CASE WHEN p.id IS NULL THEN 'is not a purchase of that player'
                           ELSE format('bought %s x %s', p.quantity, p.sku) END) AS line
          FROM holds h
          LEFT JOIN purchases p ON p.game_id = h.game_id AND p.player_id = h.player_id
                               AND 'purchase:' || p.id = h.consumed_by
         WHERE h.status = 'consumed' AND h.consumed_by LIKE 'purchase:%'
           AND (p.id IS NULL OR p.sku <> h.sku OR p.quantity <> h.quantity)
        """,
        needs=("holds",),
    ),
    Check(
        "every purchase paid exactly its price (and a refund returned it)",
        f"""
        SELECT p.id, p.game_id, p.player_id, p.currency, p.total_price,
               -coalesce(paid.total, 0) AS paid, coalesce(back.total, 0) AS refunded,
               {_SCALE.format(game="p.game_id", currency="p.currency")}
          FROM purchases p
          LEFT JOIN LATERAL (SELECT sum(delta) AS total FROM ledger_entries l
                              WHERE l.game_id = p.game_id AND l.player_id = p.player_id
                                AND {_PURCHASE_REFERENCE}
                                AND l.currency = p.currency
                                AND l.delta < 0) paid ON true
          LEFT JOIN LATERAL (SELECT sum(delta) AS total FROM ledger_entries l
                              WHERE l.game_id = p.game_id AND l.player_id = p.player_id
                                AND l.reference = 'refund:' || p.id AND l.currency = p.currency
                                AND l.delta > 0) back ON true
         WHERE coalesce(-paid.total, 0) <> p.total_price
            OR coalesce(back.total, 0) <> CASE WHEN p.status = 'refunded' THEN p.total_price
                                               ELSE 0 END
        """,
        lambda r: (
            f"purchase {r['id']} ({r['game_id']}/{r['player_id']}): charged"
            f" {_money(r, 'total_price')}, ledger shows {_money(r, 'paid')};"
            f" refunded {_money(r, 'refunded')}"
        ),
    ),
    Check(
        "every purchase granted what it says, in the item ledger",
        f"""
        SELECT format('purchase %s (%s/%s): granted %s x %s, item ledger shows %s',
                      p.id, p.game_id, p.player_id, g.e->>'quantity', g.e->>'sku',
                      coalesce(l.total, 0)) AS line
          FROM purchases p
          CROSS JOIN LATERAL jsonb_array_elements(p.granted) AS g(e)
          LEFT JOIN LATERAL (SELECT sum(delta) AS total FROM item_ledger l
                              WHERE l.game_id = p.game_id AND l.player_id = p.player_id
                                AND l.sku = g.e->>'sku'
                                AND {_PURCHASE_REFERENCE}) l
                 ON true
         WHERE g.e ? 'sku' AND coalesce(l.total, 0) <> (g.e->>'quantity')::bigint
        """,
    ),
    Check(
        "no purchase exceeds its item's per-player limit",
        """
        SELECT format('player %s/%s holds %s completed purchases of %s, limit %s',
                      c.game_id, c.player_id, c.bought, c.sku, i.per_player_limit) AS line
          FROM (SELECT game_id, player_id, sku, sum(quantity) AS bought FROM purchases
                 WHERE status = 'completed' GROUP BY 1, 2, 3) c
          JOIN games g ON g.id = c.game_id
          JOIN catalog_items i ON i.version_id = g.live_version_id AND i.sku = c.sku
         WHERE i.per_player_limit IS NOT NULL AND c.bought > i.per_player_limit
        """,
    ),
]


# Real money in (sql/64_receipts.sql): every top-up is a receipt's, every receipt credited
# exactly what it granted, every chargeback took back what it says and owes the rest, and
# what players owe is what chargebacks left owed less what later top-ups repaid.
CHECKS += [
    Check(
        "every receipt credited exactly what it granted (ledger kind topup)",
        """
        SELECT format('receipt %s (%s/%s): granted %s, the ledgers show %s',
                      r.id, r.game_id, r.player_id, g.e, coalesce(l.total, 0)) AS line
          FROM receipts r
          CROSS JOIN LATERAL jsonb_array_elements(r.granted) AS g(e)
          LEFT JOIN LATERAL (
                SELECT sum(delta) AS total FROM ledger_entries l
                 WHERE l.game_id = r.game_id AND l.player_id = r.player_id
                   AND l.reference = 'receipt:' || r.id AND l.kind = 'topup'
                   AND l.currency = g.e->>'currency'
                UNION ALL
                SELECT sum(delta) FROM item_ledger l
                 WHERE l.game_id = r.game_id AND l.player_id = r.player_id
                   AND l.reference = 'receipt:' || r.id AND l.kind = 'topup'
                   AND l.sku = g.e->>'sku') l ON l.total IS NOT NULL
         WHERE coalesce(l.total, 0) <> coalesce(g.e->>'amount', g.e->>'quantity')::bigint
        """,
        needs=("receipts", "chargebacks", "player_debts"),
    ),
    Check(
        "a hold consumed by a receipt was consumed by that player's receipt granting its units",
        """
        SELECT format('hold %s (%s/%s, %s x %s) consumed by %s, which %s',
                      h.id, h.game_id, h.player_id, h.quantity, h.sku, h.consumed_by,
                      CASE WHEN r.id IS NULL THEN 'is not a receipt of that player'
                           ELSE format('granted %s', r.granted) END) AS line
          FROM holds h
          LEFT JOIN receipts r ON r.game_id = h.game_id AND r.player_id = h.player_id
                              AND 'receipt:' || r.id = h.consumed_by
         WHERE h.status = 'consumed' AND h.consumed_by LIKE 'receipt:%'
           AND (r.id IS NULL OR NOT EXISTS (
                    SELECT FROM jsonb_array_elements(r.granted) e
                     WHERE e->>'sku' = h.sku AND (e->>'quantity')::bigint = h.quantity))
        """,
        needs=("holds", "receipts"),
    ),
    Check(
        "every top-up in the ledgers is a receipt's",
        """
        SELECT format('%s/%s: a top-up of %s %s (%s) that no receipt explains',
                      l.game_id, l.player_id, l.delta, l.what, l.reference) AS line
          FROM (SELECT game_id, player_id, delta, currency AS what, reference
                  FROM ledger_entries WHERE kind = 'topup'
                UNION ALL
                SELECT game_id, player_id, delta, sku, reference
                  FROM item_ledger WHERE kind = 'topup') l
         WHERE NOT EXISTS (SELECT 1 FROM receipts r
                            WHERE r.game_id = l.game_id AND r.player_id = l.player_id
                              AND l.reference = 'receipt:' || r.id)
        """,
        needs=("receipts", "chargebacks", "player_debts"),
    ),
    Check(
        "every chargeback took back what it says and owes the rest of its receipt",
        """
        SELECT format('chargeback of receipt %s (%s/%s): granted %s, took %s (ledgers: %s),'
                      ' owes %s', c.receipt_id, c.game_id, c.player_id, g.e, t.amount,
                      coalesce(l.total, 0), o.amount) AS line
          FROM chargebacks c
          JOIN receipts r ON r.game_id = c.game_id AND r.player_id = c.player_id
                         AND r.id = c.receipt_id
          CROSS JOIN LATERAL jsonb_array_elements(r.granted) AS g(e)
          CROSS JOIN LATERAL (
                SELECT coalesce(g.e->>'currency', g.e->>'sku') AS what,
                       coalesce(g.e->>'amount', g.e->>'quantity')::bigint AS granted) k
          CROSS JOIN LATERAL (
                SELECT coalesce(sum(coalesce(x->>'amount', x->>'quantity')::bigint), 0) AS amount
                  FROM jsonb_array_elements(c.taken) x
                 WHERE coalesce(x->>'currency', x->>'sku') = k.what) t
          CROSS JOIN LATERAL (
                SELECT coalesce(sum(coalesce(x->>'amount', x->>'quantity')::bigint), 0) AS amount
                  FROM jsonb_array_elements(c.owed) x
                 WHERE coalesce(x->>'currency', x->>'sku') = k.what) o
          LEFT JOIN LATERAL (
                SELECT -sum(delta) AS total FROM ledger_entries l
                 WHERE l.game_id = c.game_id AND l.player_id = c.player_id
                   AND l.reference = 'chargeback:' || c.receipt_id AND l.currency = k.what
                UNION ALL
                SELECT -sum(delta) FROM item_ledger l
                 WHERE l.game_id = c.game_id AND l.player_id = c.player_id
                   AND l.reference = 'chargeback:' || c.receipt_id AND l.sku = k.what) l
                 ON l.total IS NOT NULL
         WHERE t.amount + o.amount <> k.granted OR coalesce(l.total, 0) <> t.amount
            OR r.status <> 'charged_back'
        """,
        needs=("receipts", "chargebacks", "player_debts"),
    ),
    Check(
        "what players owe is what chargebacks left owed less what top-ups repaid",
        """
        WITH owed AS (
            SELECT c.game_id, c.player_id, e->>'currency' AS currency,
                   sum((e->>'amount')::bigint) AS amount
              FROM chargebacks c CROSS JOIN LATERAL jsonb_array_elements(c.owed) e
             WHERE e ? 'currency' GROUP BY 1, 2, 3),
        repaid AS (
            SELECT game_id, player_id, currency, -sum(delta) AS amount FROM ledger_entries
             WHERE kind = 'chargeback' AND reference LIKE 'repay:%' GROUP BY 1, 2, 3)
        SELECT format('debt %s/%s/%s: owed %s, repaid %s, but %s is recorded', game_id,
                      player_id, currency, coalesce(o.amount, 0), coalesce(p.amount, 0),
                      coalesce(d.amount, 0)) AS line
          FROM owed o
          FULL JOIN repaid p USING (game_id, player_id, currency)
          FULL JOIN player_debts d USING (game_id, player_id, currency)
         WHERE coalesce(o.amount, 0) - coalesce(p.amount, 0) <> coalesce(d.amount, 0)
        """,
        needs=("receipts", "chargebacks", "player_debts"),
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
        cur = conn.cursor(row_factory=dict_row)
        tables = {
            str(row["relname"])
            for row in cur.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
                " AND relkind IN ('r', 'p')"
            )
        }
        for check in CHECKS:
            query = check.query_for(tables)
            if query is None:
                continue
            for row in cur.execute(query):
                violations.append(f"{check.title}: {check.line(row)}")
    return violations
