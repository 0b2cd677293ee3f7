-- The JSON shapes the money functions answer with, shared with the read endpoints
-- (store/players.py). The bodies are rendered here, once, because the exact bytes are stored
-- with the idempotency key and replayed as they are.

-- The game's live catalog version (its row id and its number); 404 without one.
CREATE OR REPLACE FUNCTION sk_live_version(p_game text, OUT version_id bigint, OUT version integer)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT g.live_version_id, v.version INTO version_id, version
      FROM games g LEFT JOIN catalog_versions v ON v.id = g.live_version_id
     WHERE g.id = p_game;
    IF version_id IS NULL THEN
        PERFORM sk_not_found('this game has no published catalog');
    END IF;
END $$;

CREATE OR REPLACE FUNCTION sk_balances_json(p_game text, p_player text, p_version_id bigint)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('currency', c.code,
                                                 'amount', coalesce(w.balance, 0))
                              ORDER BY c.code), '[]')
      FROM catalog_currencies c
      LEFT JOIN wallets w ON w.game_id = p_game AND w.player_id = p_player AND w.currency = c.code
     WHERE c.version_id = p_version_id
$$;

CREATE OR REPLACE FUNCTION sk_inventory_json(p_game text, p_player text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', sku, 'quantity', quantity)
                              ORDER BY sku), '[]')
      FROM inventories WHERE game_id = p_game AND player_id = p_player AND quantity > 0
$$;

CREATE OR REPLACE FUNCTION sk_purchase_json(p purchases) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', p.id, 'player_id', p.player_id, 'sku', p.sku, 'quantity', p.quantity,
        'price', jsonb_build_object('currency', p.currency, 'amount', p.total_price),
        'unit_price', jsonb_build_object('currency', p.currency, 'amount', p.unit_price),
        'catalog_version', p.catalog_version, 'status', p.status, 'granted', p.granted,
        'created_at', sk_ts(p.created_at), 'refunded_at', sk_ts(p.refunded_at),
        'refund_reason', p.refund_reason, 'offer_id', p.offer_id)
$$;

-- A grant as the API shows it (sk_grant's answer and the grant.created event).
CREATE OR REPLACE FUNCTION sk_grant_json(
    p_id uuid, p_player text, p_reason text, p_granted jsonb, p_created_at timestamptz
) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', p_id, 'player_id', p_player, 'reason', p_reason,
                              'granted', p_granted, 'created_at', sk_ts(p_created_at))
$$;

-- A ledger entry as the API shows it (GET .../ledger and the events' `ledger`), and an item
-- ledger entry (the events' `item_ledger`).
-- The two ledger renderings are inlined into their caller's expression by PostgreSQL only when
-- their argument is a plain value: given a call (sk_wallet_write(...)), which they would read
-- seven times, they run as a statement of their own. Callers hold the written row in a
-- variable first (two statements fewer per purchase).
CREATE OR REPLACE FUNCTION sk_ledger_entry_json(e ledger_entries) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', e.id, 'currency', e.currency, 'delta', e.delta,
                              'balance_after', e.balance_after, 'kind', e.kind,
                              'reference', e.reference, 'created_at', sk_ts(e.created_at))
$$;

CREATE OR REPLACE FUNCTION sk_item_ledger_entry_json(e item_ledger) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', e.id, 'sku', e.sku, 'delta', e.delta,
                              'quantity_after', e.quantity_after, 'kind', e.kind,
                              'reference', e.reference, 'created_at', sk_ts(e.created_at))
$$;

-- The error envelope of a stored business rejection (errors.error_body builds the same one
-- for the errors raised outside the SQL).
CREATE OR REPLACE FUNCTION sk_error_body(
    p_code text, p_message text, p_details text, p_request_id text
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('error', jsonb_build_object(
        'code', p_code, 'message', p_message, 'details', p_details::jsonb,
        'request_id', p_request_id))::text
$$;
