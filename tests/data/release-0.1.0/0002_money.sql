-- The money path: every change of a balance, an inventory or a limited stock goes through these
-- functions, whether it comes from the player API, the service API or the studio tools.
--
-- Errors: SQLSTATE SKB01 is a final business rejection (HTTP 409, stored with the idempotency
-- key), SKN01 is "not found" and SKV01 is a validation failure (HTTP 404 / 422, never stored).
-- MESSAGE carries the API's error code, HINT the human message, DETAIL a JSON object.

CREATE FUNCTION sk_ts(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION sk_fail(p_code text, p_message text, p_details jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SKB01', MESSAGE = p_code, HINT = p_message,
        DETAIL = p_details::text;
END $$;

CREATE FUNCTION sk_not_found(p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SKN01', MESSAGE = 'not_found', HINT = p_message,
        DETAIL = '{}';
END $$;

CREATE FUNCTION sk_invalid(p_field text, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SKV01', MESSAGE = 'validation_failed',
        HINT = 'the request is not valid', DETAIL = jsonb_build_object(p_field, jsonb_build_array(p_message))::text;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Idempotency
-- ---------------------------------------------------------------------------------------------

-- Claims (game, subject, key) for this transaction, or returns the stored outcome.
-- A duplicate whose twin is still in flight waits on the twin's uncommitted row (the unique
-- index makes it), then replays its outcome; past p_wait_ms it gets idempotency_key_in_use.
CREATE FUNCTION sk_idempotency_begin(
    p_game text, p_subject text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer,
    OUT status integer, OUT body text
) LANGUAGE plpgsql AS $$
DECLARE
    v_fingerprint text;
BEGIN
    BEGIN
        PERFORM set_config('lock_timeout', greatest(p_wait_ms, 1)::text || 'ms', true);
        INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, expires_at)
        VALUES (p_game, p_subject, p_key, p_fingerprint,
                now() + make_interval(secs => p_ttl_seconds))
        ON CONFLICT DO NOTHING;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION USING ERRCODE = 'SKI01', MESSAGE = 'idempotency_key_in_use',
            HINT = 'a request with this Idempotency-Key is still being processed', DETAIL = '{}';
    END;
    PERFORM set_config('lock_timeout', '0', true);
    SELECT k.fingerprint, k.status, k.response_body INTO v_fingerprint, status, body
      FROM idempotency_keys k
     WHERE k.game_id = p_game AND k.subject = p_subject AND k.key = p_key;
    IF v_fingerprint <> p_fingerprint THEN
        RAISE EXCEPTION USING ERRCODE = 'SKV02', MESSAGE = 'idempotency_key_reused',
            HINT = 'this Idempotency-Key was used for a different request', DETAIL = '{}';
    END IF;
    -- status is NULL exactly when the row is ours (inserted by this transaction).
END $$;

CREATE FUNCTION sk_idempotency_finish(
    p_game text, p_subject text, p_key text, p_status integer, p_body text
) RETURNS void LANGUAGE sql AS $$
    UPDATE idempotency_keys SET status = p_status, response_body = p_body
     WHERE game_id = p_game AND subject = p_subject AND key = p_key;
$$;

-- Runs one operation exactly once per key, in the caller's transaction: the stored outcome
-- of an earlier run is replayed; a business rejection is stored like a success and its effects
-- are rolled back; not-found and validation errors abort the whole transaction, key included.
CREATE FUNCTION sk_idempotent(
    p_game text, p_subject text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer, p_request_id text,
    p_operation text, p_args jsonb
) RETURNS TABLE (status integer, body text, replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_status integer;
    v_body text;
    v_result jsonb;
    v_code text;
    v_message text;
    v_details text;
BEGIN
    IF p_operation NOT IN ('purchase', 'grant', 'refund', 'consume') THEN
        RAISE EXCEPTION 'unknown operation %', p_operation;
    END IF;
    SELECT b.status, b.body INTO v_status, v_body
      FROM sk_idempotency_begin(p_game, p_subject, p_key, p_fingerprint, p_ttl_seconds, p_wait_ms) b;
    IF v_status IS NOT NULL THEN
        RETURN QUERY SELECT v_status, v_body, true;
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('SELECT o.status, o.body FROM %I($1, $2, $3, $4) o', 'sk_op_' || p_operation)
           INTO v_status, v_result USING p_game, p_subject, p_key, p_args;
        v_body := v_result::text;
    EXCEPTION WHEN SQLSTATE 'SKB01' THEN
        GET STACKED DIAGNOSTICS v_code = MESSAGE_TEXT, v_message = PG_EXCEPTION_HINT,
                                v_details = PG_EXCEPTION_DETAIL;
        v_status := 409;
        v_body := jsonb_build_object('error', jsonb_build_object(
            'code', v_code, 'message', v_message, 'details', v_details::jsonb,
            'request_id', p_request_id))::text;
    END;
    PERFORM sk_idempotency_finish(p_game, p_subject, p_key, v_status, v_body);
    RETURN QUERY SELECT v_status, v_body, false;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Wallets, inventories and stock
-- ---------------------------------------------------------------------------------------------

-- Locks a player's wallets for these currencies, creating missing ones, always in currency
-- order so two transactions of one player never wait on each other in a cycle.
CREATE FUNCTION sk_lock_wallets(p_game text, p_player text, p_currencies text[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO wallets (game_id, player_id, currency)
    SELECT p_game, p_player, c FROM unnest(p_currencies) AS c ORDER BY c
    ON CONFLICT DO NOTHING;
    SELECT 1 FROM wallets
     WHERE game_id = p_game AND player_id = p_player AND currency = ANY (p_currencies)
     ORDER BY currency FOR UPDATE;
$$;

CREATE FUNCTION sk_balance(p_game text, p_player text, p_currency text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT balance FROM wallets
                      WHERE game_id = p_game AND player_id = p_player AND currency = p_currency), 0)
$$;

-- Applies one signed change to a locked wallet and writes its ledger row.
CREATE FUNCTION sk_wallet_change(
    p_game text, p_player text, p_currency text, p_delta bigint, p_cap bigint,
    p_kind text, p_reference text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
    v_before bigint;
BEGIN
    IF p_delta = 0 THEN
        RETURN sk_balance(p_game, p_player, p_currency);
    END IF;
    UPDATE wallets
       SET balance = balance + p_delta,
           cap = CASE WHEN p_delta > 0 THEN p_cap ELSE cap END
     WHERE game_id = p_game AND player_id = p_player AND currency = p_currency
       AND balance + p_delta >= 0
       AND balance + p_delta <= coalesce(CASE WHEN p_delta > 0 THEN p_cap ELSE cap END,
                                         9007199254740991)
       AND balance + p_delta <= 9007199254740991
    RETURNING balance INTO v_balance;
    IF NOT FOUND THEN
        v_before := sk_balance(p_game, p_player, p_currency);
        IF p_delta < 0 THEN
            PERFORM sk_fail('insufficient_funds', format('not enough %s', p_currency),
                jsonb_build_object('currency', p_currency, 'balance', v_before, 'required', -p_delta));
        END IF;
        PERFORM sk_fail('balance_cap_exceeded',
            format('%s would exceed its maximum balance', p_currency),
            jsonb_build_object('currency', p_currency, 'balance', v_before, 'amount', p_delta,
                               'max_balance', coalesce(p_cap, 9007199254740991)));
    END IF;
    INSERT INTO ledger_entries (game_id, player_id, currency, delta, balance_after, kind, reference)
    VALUES (p_game, p_player, p_currency, p_delta, v_balance, p_kind, p_reference);
    RETURN v_balance;
END $$;

CREATE FUNCTION sk_inventory_change(
    p_game text, p_player text, p_sku text, p_delta bigint, p_kind text, p_reference text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_quantity bigint;
BEGIN
    IF p_delta > 0 THEN
        INSERT INTO inventories AS i (game_id, player_id, sku, quantity)
        VALUES (p_game, p_player, p_sku, p_delta)
        ON CONFLICT (game_id, player_id, sku) DO UPDATE SET quantity = i.quantity + EXCLUDED.quantity
        RETURNING quantity INTO v_quantity;
    ELSE
        UPDATE inventories SET quantity = quantity + p_delta
         WHERE game_id = p_game AND player_id = p_player AND sku = p_sku
           AND quantity + p_delta >= 0
        RETURNING quantity INTO v_quantity;
        IF NOT FOUND THEN
            PERFORM sk_fail('not_enough_items', format('not enough %s', p_sku),
                jsonb_build_object('sku', p_sku, 'required', -p_delta,
                    'owned', coalesce((SELECT quantity FROM inventories WHERE game_id = p_game
                                          AND player_id = p_player AND sku = p_sku), 0)));
        END IF;
    END IF;
    INSERT INTO item_ledger (game_id, player_id, sku, delta, quantity_after, kind, reference)
    VALUES (p_game, p_player, p_sku, p_delta, v_quantity, p_kind, p_reference);
    RETURN v_quantity;
END $$;

CREATE FUNCTION sk_owned(p_game text, p_player text, p_sku text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT quantity FROM inventories
                      WHERE game_id = p_game AND player_id = p_player AND sku = p_sku), 0)
$$;

-- Takes p_quantity units of a limited item. The fast path takes them all from one random
-- bucket that is not locked by another buyer; near the end of a drop it locks every non-empty
-- bucket in order and takes what is left, so "sold out" is only ever said when it is true.
CREATE FUNCTION sk_take_stock(p_game text, p_sku text, p_quantity bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_buckets integer;
    v_offset integer;
    v_bucket integer;
    v_need bigint := p_quantity;
    v_take bigint;
    r record;
BEGIN
    SELECT buckets INTO v_buckets FROM stock_levels WHERE game_id = p_game AND sku = p_sku;
    IF NOT FOUND THEN
        PERFORM sk_fail('sold_out', format('%s is sold out', p_sku), jsonb_build_object('sku', p_sku));
    END IF;
    v_offset := floor(random() * v_buckets)::integer;
    SELECT bucket INTO v_bucket FROM stock_buckets
     WHERE game_id = p_game AND sku = p_sku AND remaining >= p_quantity
     ORDER BY (bucket + v_offset) % v_buckets
     LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        UPDATE stock_buckets SET remaining = remaining - p_quantity
         WHERE game_id = p_game AND sku = p_sku AND bucket = v_bucket;
        RETURN;
    END IF;
    FOR r IN SELECT bucket, remaining FROM stock_buckets
              WHERE game_id = p_game AND sku = p_sku AND remaining > 0
              ORDER BY bucket FOR UPDATE LOOP
        v_take := least(r.remaining, v_need);
        UPDATE stock_buckets SET remaining = remaining - v_take
         WHERE game_id = p_game AND sku = p_sku AND bucket = r.bucket;
        v_need := v_need - v_take;
        EXIT WHEN v_need = 0;
    END LOOP;
    IF v_need > 0 THEN
        PERFORM sk_fail('sold_out', format('%s is sold out', p_sku),
            jsonb_build_object('sku', p_sku, 'requested', p_quantity,
                               'remaining', p_quantity - v_need));
    END IF;
END $$;

CREATE FUNCTION sk_stock_remaining(p_game text, p_sku text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(remaining), 0)::bigint FROM stock_buckets WHERE game_id = p_game AND sku = p_sku
$$;

-- ---------------------------------------------------------------------------------------------
-- JSON shapes shared by the functions below and by the read endpoints
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION sk_live_version(p_game text, OUT version_id bigint, OUT version integer)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT g.live_version_id, v.version INTO version_id, version
      FROM games g LEFT JOIN catalog_versions v ON v.id = g.live_version_id
     WHERE g.id = p_game;
    IF version_id IS NULL THEN
        PERFORM sk_not_found('this game has no published catalog');
    END IF;
END $$;

CREATE FUNCTION sk_balances_json(p_game text, p_player text, p_version_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('currency', c.code, 'amount', coalesce(w.balance, 0))
                              ORDER BY c.code), '[]')
      FROM catalog_currencies c
      LEFT JOIN wallets w ON w.game_id = p_game AND w.player_id = p_player AND w.currency = c.code
     WHERE c.version_id = p_version_id
$$;

CREATE FUNCTION sk_inventory_json(p_game text, p_player text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', sku, 'quantity', quantity) ORDER BY sku), '[]')
      FROM inventories WHERE game_id = p_game AND player_id = p_player AND quantity > 0
$$;

CREATE FUNCTION sk_purchase_json(p purchases) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', p.id, 'player_id', p.player_id, 'sku', p.sku, 'quantity', p.quantity,
        'price', jsonb_build_object('currency', p.currency, 'amount', p.total_price),
        'unit_price', jsonb_build_object('currency', p.currency, 'amount', p.unit_price),
        'catalog_version', p.catalog_version, 'status', p.status, 'granted', p.granted,
        'created_at', sk_ts(p.created_at), 'refunded_at', sk_ts(p.refunded_at),
        'refund_reason', p.refund_reason)
$$;

-- ---------------------------------------------------------------------------------------------
-- Operations run by sk_idempotent: (game, subject, key, args) -> (status, body)
-- ---------------------------------------------------------------------------------------------

-- Grants what an item (or a bundle's contents) gives, p_times over; returns what was granted.
CREATE FUNCTION sk_grant_contents(
    p_game text, p_player text, p_version_id bigint, p_item catalog_items, p_times bigint,
    p_kind text, p_reference text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_granted jsonb := '[]';
    c record;
    v_kind text;
BEGIN
    IF p_item.kind <> 'bundle' THEN
        IF p_item.kind = 'durable' AND (p_times > 1 OR sk_owned(p_game, p_player, p_item.sku) > 0) THEN
            PERFORM sk_fail('purchase_limit_reached',
                format('%s is durable and already owned', p_item.sku),
                jsonb_build_object('sku', p_item.sku, 'limit', 1));
        END IF;
        PERFORM sk_inventory_change(p_game, p_player, p_item.sku, p_times, p_kind, p_reference);
        RETURN jsonb_build_array(jsonb_build_object('sku', p_item.sku, 'quantity', p_times));
    END IF;
    -- Items first in sku order, then currencies in code order: the fixed lock order.
    FOR c IN SELECT e->>'sku' AS sku, (e->>'quantity')::bigint AS quantity
               FROM jsonb_array_elements(p_item.contents) e WHERE e ? 'sku' ORDER BY 1 LOOP
        SELECT kind INTO v_kind FROM catalog_items WHERE version_id = p_version_id AND sku = c.sku;
        IF v_kind = 'durable' AND (c.quantity * p_times > 1 OR sk_owned(p_game, p_player, c.sku) > 0) THEN
            PERFORM sk_fail('purchase_limit_reached',
                format('the bundle holds %s, which is durable and already owned', c.sku),
                jsonb_build_object('sku', c.sku, 'limit', 1));
        END IF;
        PERFORM sk_inventory_change(p_game, p_player, c.sku, c.quantity * p_times, p_kind, p_reference);
        v_granted := v_granted || jsonb_build_object('sku', c.sku, 'quantity', c.quantity * p_times);
    END LOOP;
    FOR c IN SELECT e->>'currency' AS currency, (e->>'amount')::bigint AS amount, cc.max_balance
               FROM jsonb_array_elements(p_item.contents) e
               JOIN catalog_currencies cc ON cc.version_id = p_version_id AND cc.code = e->>'currency'
              ORDER BY 1 LOOP
        PERFORM sk_wallet_change(p_game, p_player, c.currency, c.amount * p_times, c.max_balance,
                                 p_kind, p_reference);
        v_granted := v_granted || jsonb_build_object('currency', c.currency, 'amount', c.amount * p_times);
    END LOOP;
    RETURN v_granted;
END $$;

CREATE FUNCTION sk_contents_currencies(p_item catalog_items) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(e->>'currency'), '{}')
      FROM jsonb_array_elements(p_item.contents) e WHERE e ? 'currency'
$$;

-- args: {sku, quantity, currency?, expected_price?: {currency, amount}}
CREATE FUNCTION sk_op_purchase(p_game text, p_player text, p_key text, p_args jsonb,
                               OUT status integer, OUT body jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_live record;
    v_item catalog_items;
    v_quantity bigint := (p_args->>'quantity')::bigint;
    v_currency text := p_args->>'currency';
    v_unit bigint;
    v_total bigint;
    v_purchased bigint;
    v_purchase purchases;
    v_id uuid := gen_random_uuid();
    v_reference text;
    v_granted jsonb;
BEGIN
    SELECT * INTO v_live FROM sk_live_version(p_game);
    SELECT * INTO v_item FROM catalog_items WHERE version_id = v_live.version_id AND sku = p_args->>'sku';
    IF NOT FOUND THEN
        PERFORM sk_not_found(format('no item %s in the live catalog', p_args->>'sku'));
    END IF;
    IF v_currency IS NULL THEN
        IF jsonb_array_length(v_item.prices) > 1 THEN
            PERFORM sk_invalid('currency', 'required: this item has several prices');
        END IF;
        v_currency := v_item.prices->0->>'currency';
    END IF;
    SELECT (e->>'amount')::bigint INTO v_unit
      FROM jsonb_array_elements(v_item.prices) e WHERE e->>'currency' = v_currency;
    IF v_unit IS NULL THEN
        PERFORM sk_invalid('currency', format('%s is not sold for %s', v_item.sku, v_currency));
    END IF;

    -- Final rejections from here on: stored with the key.
    IF p_args ? 'expected_price' AND (p_args->'expected_price'->>'currency' <> v_currency
                                      OR (p_args->'expected_price'->>'amount')::bigint <> v_unit) THEN
        PERFORM sk_fail('price_changed', 'the price is not the one the player saw',
            jsonb_build_object('expected', p_args->'expected_price',
                               'current', jsonb_build_object('currency', v_currency, 'amount', v_unit),
                               'catalog_version', v_live.version));
    END IF;
    IF (v_item.available_from IS NOT NULL AND now() < v_item.available_from)
       OR (v_item.available_until IS NOT NULL AND now() >= v_item.available_until) THEN
        PERFORM sk_fail('item_unavailable', format('%s is not on sale now', v_item.sku),
            jsonb_build_object('sku', v_item.sku, 'available_from', sk_ts(v_item.available_from),
                               'available_until', sk_ts(v_item.available_until)));
    END IF;

    -- A look at the stock without locking anything: once a drop is gone, buyers hear
    -- "sold out" (not "not enough coins") and never queue on a wallet. sk_take_stock below
    -- is what actually guards the stock.
    IF v_item.stock IS NOT NULL AND sk_stock_remaining(p_game, v_item.sku) < v_quantity THEN
        PERFORM sk_fail('sold_out', format('%s is sold out', v_item.sku),
            jsonb_build_object('sku', v_item.sku, 'requested', v_quantity,
                               'remaining', sk_stock_remaining(p_game, v_item.sku)));
    END IF;

    v_total := v_unit * v_quantity;
    -- Lock order: wallets (by currency), the player's count for this sku, stock, inventory.
    PERFORM sk_lock_wallets(p_game, p_player,
                            array_append(sk_contents_currencies(v_item), v_currency));
    IF sk_balance(p_game, p_player, v_currency) < v_total THEN
        PERFORM sk_fail('insufficient_funds', format('not enough %s', v_currency),
            jsonb_build_object('currency', v_currency, 'required', v_total,
                               'balance', sk_balance(p_game, p_player, v_currency)));
    END IF;
    IF v_item.per_player_limit IS NOT NULL OR v_item.kind = 'durable' THEN
        INSERT INTO player_item_counts AS c (game_id, player_id, sku, purchased)
        VALUES (p_game, p_player, v_item.sku, v_quantity)
        ON CONFLICT (game_id, player_id, sku) DO UPDATE SET purchased = c.purchased + EXCLUDED.purchased
        RETURNING purchased INTO v_purchased;
        IF v_purchased > v_item.per_player_limit THEN
            PERFORM sk_fail('purchase_limit_reached',
                format('at most %s of %s per player', v_item.per_player_limit, v_item.sku),
                jsonb_build_object('sku', v_item.sku, 'limit', v_item.per_player_limit,
                                   'purchased', v_purchased - v_quantity));
        END IF;
    END IF;
    -- sk_grant_contents checks this too; checking here first keeps a refused buyer off the
    -- hot stock rows of a limited durable.
    IF v_item.kind = 'durable' AND (v_quantity > 1 OR sk_owned(p_game, p_player, v_item.sku) > 0) THEN
        PERFORM sk_fail('purchase_limit_reached', format('%s is durable and already owned', v_item.sku),
            jsonb_build_object('sku', v_item.sku, 'limit', 1));
    END IF;
    IF v_item.stock IS NOT NULL THEN
        PERFORM sk_take_stock(p_game, v_item.sku, v_quantity);
    END IF;

    v_reference := 'purchase:' || v_id;
    IF v_total > 0 THEN
        PERFORM sk_wallet_change(p_game, p_player, v_currency, -v_total, NULL, 'purchase', v_reference);
    END IF;
    v_granted := sk_grant_contents(p_game, p_player, v_live.version_id, v_item, v_quantity,
                                   'purchase', v_reference);
    INSERT INTO purchases (id, game_id, player_id, sku, quantity, currency, unit_price, total_price,
                           catalog_version, status, granted, idempotency_key)
    VALUES (v_id, p_game, p_player, v_item.sku, v_quantity, v_currency, v_unit, v_total,
            v_live.version, 'completed', v_granted, p_key)
    RETURNING * INTO v_purchase;
    status := 201;
    body := jsonb_build_object(
        'purchase', sk_purchase_json(v_purchase),
        'balances', sk_balances_json(p_game, p_player, v_live.version_id),
        'granted', v_granted);
END $$;

-- args: {player_id, reason, actor, currency + amount | sku + quantity}
CREATE FUNCTION sk_op_grant(p_game text, p_actor text, p_key text, p_args jsonb,
                            OUT status integer, OUT body jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_live record;
    v_player text := p_args->>'player_id';
    v_item catalog_items;
    v_currency catalog_currencies;
    v_id uuid := gen_random_uuid();
    v_reference text := 'grant:' || v_id;
    v_granted jsonb;
BEGIN
    SELECT * INTO v_live FROM sk_live_version(p_game);
    IF p_args ? 'currency' THEN
        SELECT * INTO v_currency FROM catalog_currencies
         WHERE version_id = v_live.version_id AND code = p_args->>'currency';
        IF NOT FOUND THEN
            PERFORM sk_invalid('currency', format('%s is not a currency of the live catalog',
                                                  p_args->>'currency'));
        END IF;
        PERFORM sk_lock_wallets(p_game, v_player, ARRAY[v_currency.code]);
        PERFORM sk_wallet_change(p_game, v_player, v_currency.code, (p_args->>'amount')::bigint,
                                 v_currency.max_balance, 'grant', v_reference);
        v_granted := jsonb_build_array(jsonb_build_object('currency', v_currency.code,
                                                          'amount', (p_args->>'amount')::bigint));
    ELSE
        SELECT * INTO v_item FROM catalog_items
         WHERE version_id = v_live.version_id AND sku = p_args->>'sku';
        IF NOT FOUND THEN
            PERFORM sk_not_found(format('no item %s in the live catalog', p_args->>'sku'));
        END IF;
        PERFORM sk_lock_wallets(p_game, v_player, sk_contents_currencies(v_item));
        v_granted := sk_grant_contents(p_game, v_player, v_live.version_id, v_item,
                                       (p_args->>'quantity')::bigint, 'grant', v_reference);
    END IF;
    INSERT INTO grants (id, game_id, player_id, currency, amount, sku, quantity, reason, granted_by)
    VALUES (v_id, p_game, v_player, p_args->>'currency', (p_args->>'amount')::bigint,
            p_args->>'sku', (p_args->>'quantity')::bigint, p_args->>'reason', p_actor);
    status := 201;
    body := jsonb_build_object(
        'grant', jsonb_build_object('id', v_id, 'player_id', v_player, 'reason', p_args->>'reason',
                                    'granted', v_granted, 'created_at', sk_ts(now())),
        'balances', sk_balances_json(p_game, v_player, v_live.version_id),
        'inventory', sk_inventory_json(p_game, v_player));
END $$;

-- args: {purchase_id, reason}
CREATE FUNCTION sk_op_refund(p_game text, p_actor text, p_key text, p_args jsonb,
                             OUT status integer, OUT body jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_purchase purchases;
    v_reference text;
    v_currencies text[];
    g record;
    v_cap bigint;
BEGIN
    SELECT * INTO v_purchase FROM purchases
     WHERE game_id = p_game AND id = (p_args->>'purchase_id')::uuid FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM sk_not_found('no such purchase');
    END IF;
    status := 200;
    IF v_purchase.status = 'refunded' THEN
        -- Refunding twice changes nothing: the purchase is returned as it stands.
        body := jsonb_build_object('purchase', sk_purchase_json(v_purchase));
        RETURN;
    END IF;
    v_reference := 'refund:' || v_purchase.id;
    SELECT array_agg(e->>'currency') INTO v_currencies
      FROM jsonb_array_elements(v_purchase.granted) e WHERE e ? 'currency';
    PERFORM sk_lock_wallets(p_game, v_purchase.player_id,
                            array_append(coalesce(v_currencies, '{}'), v_purchase.currency));
    -- A refunded purchase no longer counts against the per-player limit. Same lock order as
    -- a purchase: wallets, then this count, then inventory.
    UPDATE player_item_counts SET purchased = purchased - v_purchase.quantity
     WHERE game_id = p_game AND player_id = v_purchase.player_id AND sku = v_purchase.sku;
    -- Take back what was granted: items (sku order), then currencies (code order).
    FOR g IN SELECT e->>'sku' AS sku, (e->>'quantity')::bigint AS quantity
               FROM jsonb_array_elements(v_purchase.granted) e WHERE e ? 'sku' ORDER BY 1 LOOP
        PERFORM sk_inventory_change(p_game, v_purchase.player_id, g.sku, -g.quantity, 'refund', v_reference);
    END LOOP;
    FOR g IN SELECT e->>'currency' AS currency, (e->>'amount')::bigint AS amount
               FROM jsonb_array_elements(v_purchase.granted) e WHERE e ? 'currency' ORDER BY 1 LOOP
        IF sk_balance(p_game, v_purchase.player_id, g.currency) < g.amount THEN
            PERFORM sk_fail('not_enough_items',
                format('the %s granted by this purchase has been spent', g.currency),
                jsonb_build_object('currency', g.currency, 'required', g.amount,
                                   'balance', sk_balance(p_game, v_purchase.player_id, g.currency)));
        END IF;
        PERFORM sk_wallet_change(p_game, v_purchase.player_id, g.currency, -g.amount, NULL,
                                 'refund', v_reference);
    END LOOP;
    IF v_purchase.total_price > 0 THEN
        SELECT cc.max_balance INTO v_cap FROM games gm
          JOIN catalog_currencies cc ON cc.version_id = gm.live_version_id AND cc.code = v_purchase.currency
         WHERE gm.id = p_game;
        PERFORM sk_wallet_change(p_game, v_purchase.player_id, v_purchase.currency,
                                 v_purchase.total_price, v_cap, 'refund', v_reference);
    END IF;
    UPDATE purchases SET status = 'refunded', refunded_at = now(), refund_reason = p_args->>'reason'
     WHERE game_id = p_game AND player_id = v_purchase.player_id AND seq = v_purchase.seq
    RETURNING * INTO v_purchase;
    body := jsonb_build_object('purchase', sk_purchase_json(v_purchase));
END $$;

-- args: {sku, quantity}
CREATE FUNCTION sk_op_consume(p_game text, p_player text, p_key text, p_args jsonb,
                              OUT status integer, OUT body jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_live record;
    v_kind text;
    v_left bigint;
BEGIN
    SELECT * INTO v_live FROM sk_live_version(p_game);
    SELECT kind INTO v_kind FROM catalog_items WHERE version_id = v_live.version_id AND sku = p_args->>'sku';
    IF NOT FOUND THEN
        PERFORM sk_not_found(format('no item %s in the live catalog', p_args->>'sku'));
    END IF;
    IF v_kind <> 'consumable' THEN
        PERFORM sk_invalid('sku', format('%s is %s; only consumable items are consumed', p_args->>'sku', v_kind));
    END IF;
    v_left := sk_inventory_change(p_game, p_player, p_args->>'sku', -(p_args->>'quantity')::bigint,
                                  'consume', 'consume:' || p_key);
    status := 200;
    body := jsonb_build_object('sku', p_args->>'sku', 'quantity', v_left);
END $$;
