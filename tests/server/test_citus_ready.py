"""The schema is ready for Citus: checked against PostgreSQL's own catalog.

Citus cannot be installed here, so this is the limit of the proof: the rules Citus imposes on
tables distributed by the player are read from pg_class, pg_index and pg_constraint of the
migrated schema, and docs/scaling.md must list exactly the ``create_distributed_table`` and
``create_reference_table`` calls of the plan below (its one home).

The rules (Citus docs, "Distributed data modeling" and "Table management"):
- a unique index or constraint (the primary key included) of a distributed table contains its
  distribution column;
- a foreign key between distributed tables contains the distribution column on both sides, at
  the same position (the rows it joins are on one shard);
- a reference table (copied whole to every node) never references a distributed table;
- reference tables do not grow with players (no player column), so they stay small.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

SCALING_DOC = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"

# The plan: each player-scoped table and its distribution column. idempotency_keys is keyed by
# (game, subject, key): for every player call the subject is the player, so distributing it on
# subject puts a purchase's key on the player's shard, next to its effects. The shared rate
# limit's counters are keyed the same way, by (game, account, rule).
DISTRIBUTED: dict[str, str] = {
    "wallets": "player_id",
    "ledger_entries": "player_id",
    "inventories": "player_id",
    "item_ledger": "player_id",
    "purchases": "player_id",
    "player_item_counts": "player_id",
    "grants": "player_id",
    "player_profiles": "player_id",
    "promo_redemptions": "player_id",
    "player_offer_counts": "player_id",
    "risk_events": "player_id",
    "holds": "player_id",
    "idempotency_keys": "subject",
    # The events outbox is read per game (the feed, its positions): one game's events together.
    "events": "game_id",
    "event_positions": "game_id",
    # Real money in: a player's debts and chargebacks; a receipt on its store transaction (one
    # credit per transaction whoever sends it), a Steam order on its order id.
    "player_debts": "player_id",
    "chargebacks": "player_id",
    "receipts": "transaction_id",
    "steam_orders": "order_id",
    "rate_limit_windows": "subject",
}
# Everything else: the games, their keys and catalogs, stock, studio sessions, bookkeeping.
REFERENCE: set[str] = {
    "games",
    "game_keys",
    "catalog_versions",
    "catalog_currencies",
    "catalog_items",
    "catalog_offers",
    "catalog_item_segments",
    "catalog_promo_codes",
    "promo_code_budgets",
    "stock_levels",
    "stock_buckets",
    "stock_restocks",
    "studio_sessions",
    "risk_breakers",
    "risk_breaker_log",
    "schema_migrations",
    "schema_functions",
    "webhook_endpoints",
    "webhook_progress",
    "webhook_resends",
    "webhook_deliveries",
    "catalog_products",
    "store_accounts",
}
# Columns whose presence means a table grows with players.
PLAYER_COLUMNS = {"player_id"}


def tables(conn: psycopg.Connection) -> set[str]:
    """The schema's tables (a partitioned table counts once, its partitions not at all)."""
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        " AND relkind IN ('r', 'p') AND NOT relispartition"
    ).fetchall()
    return {name for (name,) in rows}


def violations(
    conn: psycopg.Connection, distributed: dict[str, str], reference: set[str]
) -> list[str]:
    """What would stop ``create_distributed_table`` / ``create_reference_table`` for this plan,
    one line each."""
    found: list[str] = []
    attnum = {
        table: conn.execute(
            "SELECT attnum FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s"
            " AND NOT attisdropped",
            (table, column),
        ).fetchone()
        for table, column in distributed.items()
    }
    for table, column in distributed.items():
        number = attnum[table]
        if number is None:
            found.append(f"{table} has no column {column}")
            continue
        for (index,) in conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index"
            " WHERE indrelid = %s::regclass AND indisunique AND NOT (%s = ANY(indkey::int2[]))",
            (table, number[0]),
        ).fetchall():
            found.append(f"unique index {index} of {table} lacks {column}")
    for name, source, target, keys, referenced in conn.execute(
        "SELECT conname, conrelid::regclass::text, confrelid::regclass::text,"
        " conkey::int2[], confkey::int2[] FROM pg_constraint WHERE contype = 'f'"
        " AND connamespace = current_schema()::regnamespace"
    ).fetchall():
        if source in reference and target in distributed:
            found.append(f"reference table {source} references distributed {target} ({name})")
        if source in distributed and target in distributed:
            own, theirs = attnum[source], attnum[target]
            pairs = list(zip(keys, referenced, strict=True))
            if own is None or theirs is None or (own[0], theirs[0]) not in pairs:
                found.append(
                    f"foreign key {name} from {source} to {target} does not join on"
                    f" {distributed[source]} = {distributed[target]}"
                )
    for table in sorted(reference):
        grows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attname = ANY(%s) AND NOT attisdropped",
            (table, sorted(PLAYER_COLUMNS)),
        ).fetchall()
        if grows:
            found.append(f"reference table {table} has a player column {grows[0][0]}")
    return found


def test_every_table_has_a_place_in_the_plan(conn: psycopg.Connection) -> None:
    assert not DISTRIBUTED.keys() & REFERENCE
    assert tables(conn) == DISTRIBUTED.keys() | REFERENCE


def test_the_schema_follows_the_rules_citus_imposes(conn: psycopg.Connection) -> None:
    assert violations(conn, DISTRIBUTED, REFERENCE) == []


def test_the_check_sees_a_schema_that_breaks_the_rules(conn: psycopg.Connection) -> None:
    # In the test's transaction, rolled back: a player table keyed without the player, a
    # foreign key that joins two players' shards, and a reference table pointing at players.
    conn.execute("CREATE TABLE bad_titles (title_id bigint PRIMARY KEY, player_id text NOT NULL)")
    conn.execute(
        "CREATE TABLE bad_gifts (game_id text, player_id text, currency text, sender text,"
        " PRIMARY KEY (game_id, player_id, currency),"
        " FOREIGN KEY (game_id, sender, currency)"
        " REFERENCES wallets (game_id, player_id, currency))"
    )
    conn.execute(
        "CREATE TABLE bad_banners (id bigint PRIMARY KEY, game_id text, player_id text,"
        " currency text,"
        " FOREIGN KEY (game_id, player_id, currency) REFERENCES wallets)"
    )
    distributed = {**DISTRIBUTED, "bad_titles": "player_id", "bad_gifts": "player_id"}
    found = violations(conn, distributed, REFERENCE | {"bad_banners"})
    assert sorted(found) == sorted(
        [
            "unique index bad_titles_pkey of bad_titles lacks player_id",
            "foreign key bad_gifts_game_id_sender_currency_fkey from bad_gifts to wallets does not"
            " join on player_id = player_id",
            "reference table bad_banners references distributed wallets"
            " (bad_banners_game_id_player_id_currency_fkey)",
            "reference table bad_banners has a player column player_id",
        ]
    )


def test_the_scaling_doc_lists_exactly_the_plan() -> None:
    text = SCALING_DOC.read_text()
    distributed = dict(
        re.findall(r"create_distributed_table\('(\w+)', '(\w+)'", text, flags=re.MULTILINE)
    )
    reference = set(re.findall(r"create_reference_table\('(\w+)'\)", text))
    assert distributed == DISTRIBUTED
    assert reference == REFERENCE


@pytest.mark.parametrize("table", sorted(DISTRIBUTED))
def test_a_distributed_table_is_keyed_by_game_and_its_column_first(
    conn: psycopg.Connection, table: str
) -> None:
    # DESIGN.md: (game_id, player_id) lead every player table's primary key, so one player's
    # rows are one index range on their shard.
    row = conn.execute(
        "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i"
        " CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary",
        (table,),
    ).fetchone()
    assert row is not None
    leading = ["game_id"] if DISTRIBUTED[table] == "game_id" else ["game_id", DISTRIBUTED[table]]
    assert row[0][: len(leading)] == leading
