-- Holds (table: migration 0010): units of a limited item set aside for one player for a few
-- minutes while the player pays, then taken by the purchase (or receipt) that names the hold.
--
-- Where the units are: placing a hold takes them out of stock_buckets with sk_take_stock, the
-- same guarded take a purchase makes, so holds can never oversell a drop. While a hold is
-- 'active' its units are its own; past expires_at it can no longer be used and its units count
-- as available again (sk_stock_remaining, which GET /v1/stock shows): the next take that finds
-- the buckets short puts them back (sk_reclaim_expired_holds, status 'expired'), so an expired
-- hold returns its units to sale by itself, with no job. Releasing returns them at once
-- ('released'); consuming makes them a sale ('consumed', consumed_by names the consumer).
--
-- Functions any operation may call (a purchase does; a receipt that names a hold should):
--
--   sk_hold_for(p_game text, p_player text, p_hold_id uuid, p_sku text, p_quantity bigint,
--               p_lock boolean) RETURNS holds
--       The player's hold, checked against what the operation takes: not_found (404) when
--       the player has no hold with that id (another player's included), validation_failed
--       (422, field hold_id) when it is for another sku or quantity. Locks it when p_lock.
--   sk_check_hold_usable(p_hold holds) RETURNS void
--       hold_expired (409) unless the hold is active and before its expires_at.
--   sk_consume_hold(p_game text, p_player text, p_hold_id uuid, p_sku text,
--                   p_quantity bigint, p_reference text) RETURNS holds
--       Both of the above under the hold's lock, then marks it consumed by p_reference (e.g.
--       'purchase:<id>', 'receipt:<id>'): the hold's units are then sold, and the caller must
--       not take stock for them again. The caller grants, charges and records the sale.
--   sk_held_units(p_game text, p_player text, p_sku text, p_except uuid) RETURNS bigint
--       Units of p_sku the player holds in usable holds (except p_except): what a per-player
--       limit counts besides the units bought.
--
-- Lock order, shared with the purchase: wallets (by currency), the player's count row of the
-- sku, holds (by player, then id), stock buckets, inventory rows, then the item's sold-out
-- line (sk_check_sold_out's advisory lock, 70_events.sql). Within the buckets: a transaction
-- either takes one bucket without waiting (sk_take_stock's fast path, SKIP LOCKED) and then
-- waits for no hold and no other bucket, or waits for buckets one at a time in bucket order
-- (the slow path; its reclaimed units go into bucket 0, the first of that order); a release
-- or the janitor's reclaim waits for one bucket only, last. Every function here locks holds
-- before any bucket and none waits for a hold once it holds a bucket; sk_take_stock undoes
-- the stray lock its fast path's look can leave before the slow path waits for anything
-- (30_stock.sql says how it comes about). So a release, a reclaim, a consumption and a take
-- cannot deadlock.
--
-- The order in which placing a hold is checked (the first that applies is the answer; 1 to 3
-- are not stored with the key, 4 on are final 409s stored with it):
--   0. the key, as for a purchase (60_purchase.sql);
--  0a. account_frozen (403, not stored): the player is frozen (65_risk.sql's sk_risk_admit);
--   1. not_found: the game has no published catalog;
--   2. not_found: the sku is not in the live catalog, or is an item only a segment sees that the
--      player is not in (sk_item_hidden_from, 66_offers.sql: as for a purchase);
--   3. validation_failed (sku): the item is not limited (holds are for limited items only);
--   4. item_unavailable: outside the item's sale window;
--   5. sold_out: fewer units available than asked for (a look without locks);
--   6. purchase_limit_reached: units bought + held + these pass the per_player_limit
--      (the player's count row of the sku locked; a lock of (game, player, sku) without a
--      limit);
--   7. purchase_limit_reached: a durable held or owned already, or more than one unit of it;
--   8. hold_limit_reached: the player would hold more than p_max_held units of the item;
--   9. sold_out: the units are taken under lock (a concurrent buyer took the last ones).

-- What the API calls a hold's status: an active hold past its expiry is 'expired' already,
-- whether or not its units have been put back yet.
CREATE OR REPLACE FUNCTION sk_hold_state(h holds) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN h.status = 'active' AND h.expires_at <= now() THEN 'expired'
                ELSE h.status END
$$;

CREATE OR REPLACE FUNCTION sk_hold_json(h holds) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', h.id, 'sku', h.sku, 'quantity', h.quantity, 'status', sk_hold_state(h),
        'expires_at', sk_ts(h.expires_at), 'created_at', sk_ts(h.created_at))
$$;

CREATE OR REPLACE FUNCTION sk_held_units(p_game text, p_player text, p_sku text, p_except uuid)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(quantity), 0)::bigint FROM holds
     WHERE game_id = p_game AND player_id = p_player AND sku = p_sku AND status = 'active'
       AND expires_at > now() AND id IS DISTINCT FROM p_except
$$;

-- Puts p_quantity units back into p_bucket of p_sku, or (NULL) into one picked at random so
-- returns do not all queue on one row.
CREATE OR REPLACE FUNCTION sk_return_stock(
    p_game text, p_sku text, p_quantity bigint, p_bucket integer DEFAULT NULL
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_bucket integer := p_bucket;
BEGIN
    IF v_bucket IS NULL THEN
        SELECT floor(random() * buckets)::integer INTO v_bucket
          FROM stock_levels WHERE game_id = p_game AND sku = p_sku;
    END IF;
    UPDATE stock_buckets SET remaining = remaining + p_quantity
     WHERE game_id = p_game AND sku = p_sku AND bucket = v_bucket;
END $$;

-- Ends every hold of p_sku that is past its expiry and still has its units, and puts the units
-- back into the stock (into p_bucket, or a random bucket when NULL); returns how many. All the
-- holds are locked (in the shared order) before the one bucket is, and a hold a concurrent
-- release or consumption changed meanwhile is skipped (FOR UPDATE reads it again after
-- waiting). The caller must hold no bucket (the lock order above).
CREATE OR REPLACE FUNCTION sk_reclaim_expired_holds(
    p_game text, p_sku text, p_bucket integer DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_units bigint := 0;
    r record;
BEGIN
    FOR r IN SELECT player_id, id, quantity FROM holds
              WHERE game_id = p_game AND sku = p_sku AND status = 'active'
                AND expires_at <= now()
              ORDER BY player_id, id FOR UPDATE LOOP
        UPDATE holds SET status = 'expired', ended_at = now()
         WHERE game_id = p_game AND player_id = r.player_id AND id = r.id;
        v_units := v_units + r.quantity;
    END LOOP;
    IF v_units > 0 THEN
        PERFORM sk_return_stock(p_game, p_sku, v_units, p_bucket);
    END IF;
    RETURN v_units;
END $$;

CREATE OR REPLACE FUNCTION sk_hold_for(
    p_game text, p_player text, p_hold_id uuid, p_sku text, p_quantity bigint, p_lock boolean
) RETURNS holds LANGUAGE plpgsql AS $$
DECLARE
    v_hold holds;
BEGIN
    IF p_lock THEN
        SELECT * INTO v_hold FROM holds
         WHERE game_id = p_game AND player_id = p_player AND id = p_hold_id FOR UPDATE;
    ELSE
        SELECT * INTO v_hold FROM holds
         WHERE game_id = p_game AND player_id = p_player AND id = p_hold_id;
    END IF;
    IF NOT FOUND THEN
        PERFORM sk_not_found(format('no hold %s', p_hold_id));
    END IF;
    IF v_hold.sku <> p_sku OR v_hold.quantity <> p_quantity THEN
        PERFORM sk_invalid('hold_id', format('the hold is for %s x %s, not %s x %s',
                                             v_hold.quantity, v_hold.sku, p_quantity, p_sku));
    END IF;
    RETURN v_hold;
END $$;

CREATE OR REPLACE FUNCTION sk_check_hold_usable(p_hold holds) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_hold.status <> 'active' OR p_hold.expires_at <= now() THEN
        PERFORM sk_fail('hold_expired',
            format('hold %s is %s: it can no longer be used', p_hold.id, sk_hold_state(p_hold)),
            jsonb_build_object('hold_id', p_hold.id, 'sku', p_hold.sku,
                               'status', sk_hold_state(p_hold),
                               'expires_at', sk_ts(p_hold.expires_at)));
    END IF;
END $$;

CREATE OR REPLACE FUNCTION sk_consume_hold(
    p_game text, p_player text, p_hold_id uuid, p_sku text, p_quantity bigint, p_reference text
) RETURNS holds LANGUAGE plpgsql AS $$
DECLARE
    v_hold holds;
BEGIN
    v_hold := sk_hold_for(p_game, p_player, p_hold_id, p_sku, p_quantity, true);
    PERFORM sk_check_hold_usable(v_hold);
    UPDATE holds SET status = 'consumed', ended_at = now(), consumed_by = p_reference
     WHERE game_id = p_game AND player_id = p_player AND id = p_hold_id
    RETURNING * INTO v_hold;
    RETURN v_hold;
END $$;

-- A player holds p_quantity of p_sku for p_hold_seconds, exactly once per idempotency key, in
-- one statement; the checks run in the order listed at the top of this file.
CREATE OR REPLACE FUNCTION sk_place_hold(
    p_game text, p_player text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer, p_request_id text,
    p_sku text, p_quantity integer, p_hold_seconds integer, p_max_held integer,
    OUT status integer, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_live record;
    v_item catalog_items;
    v_available bigint;
    v_purchased bigint;
    v_held bigint;
    v_hold holds;
    v_code text;
    v_message text;
    v_details text;
    v_start record;
BEGIN
    v_start := sk_operation_start(p_game, p_player, p_player, p_key, p_fingerprint,  -- 0, 0a
                                  p_ttl_seconds, p_wait_ms, 'hold', p_request_id);
    status := v_start.status;
    body := v_start.body;
    replayed := v_start.replayed;
    IF status IS NOT NULL THEN
        RETURN;
    END IF;
    BEGIN
        v_live := sk_live_version(p_game);                                                 -- 1
        SELECT * INTO v_item FROM catalog_items
         WHERE version_id = v_live.version_id AND sku = p_sku;
        IF NOT FOUND                                                                      -- 2
           OR sk_item_hidden_from(p_game, p_player, v_live.version_id, v_item.sku) THEN
            PERFORM sk_not_found(format('no item %s in the live catalog', p_sku));
        END IF;
        IF v_item.stock IS NULL THEN                                                      -- 3
            PERFORM sk_invalid('sku', format('%s is not a limited item: only limited items'
                                             ' are held', p_sku));
        END IF;
        IF (v_item.available_from IS NOT NULL AND now() < v_item.available_from)          -- 4
           OR (v_item.available_until IS NOT NULL AND now() >= v_item.available_until) THEN
            PERFORM sk_fail('item_unavailable', format('%s is not on sale now', v_item.sku),
                jsonb_build_object('sku', v_item.sku,
                                   'available_from', sk_ts(v_item.available_from),
                                   'available_until', sk_ts(v_item.available_until)));
        END IF;
        v_available := sk_stock_remaining(p_game, v_item.sku);                            -- 5
        IF v_available < p_quantity THEN
            PERFORM sk_fail('sold_out', format('%s is sold out', v_item.sku),
                jsonb_build_object('sku', v_item.sku, 'requested', p_quantity,
                                   'remaining', v_available));
        END IF;
        -- One player's holds (and, with a limit, purchases) of one sku are serialized, so the
        -- units held and bought are counted with none in flight: by the count row, as a
        -- purchase is, where the sku has a per-player limit; otherwise by a transaction lock
        -- of (game, player, sku), which leaves no count row that purchases and refunds of the
        -- sku (which keep none for it) would not expect.
        IF v_item.per_player_limit IS NOT NULL OR v_item.kind = 'durable' THEN
            INSERT INTO player_item_counts AS c (game_id, player_id, sku, purchased)
            VALUES (p_game, p_player, v_item.sku, 0)
            ON CONFLICT (game_id, player_id, sku) DO UPDATE SET purchased = c.purchased
            RETURNING purchased INTO v_purchased;
        ELSE
            PERFORM pg_advisory_xact_lock(
                hashtextextended(format('hold %s %s %s', p_game, p_player, v_item.sku), 0));
        END IF;
        v_held := sk_held_units(p_game, p_player, v_item.sku, NULL);
        IF v_purchased + v_held + p_quantity > v_item.per_player_limit THEN               -- 6
            PERFORM sk_fail('purchase_limit_reached',
                format('at most %s of %s per player', v_item.per_player_limit, v_item.sku),
                jsonb_build_object('sku', v_item.sku, 'limit', v_item.per_player_limit,
                                   'purchased', v_purchased, 'held', v_held));
        END IF;
        IF v_item.kind = 'durable'                                                        -- 7
           AND (p_quantity > 1 OR v_held > 0 OR sk_owned(p_game, p_player, v_item.sku) > 0) THEN
            PERFORM sk_fail('purchase_limit_reached',
                format('%s is durable and already owned or held', v_item.sku),
                jsonb_build_object('sku', v_item.sku, 'limit', 1));
        END IF;
        IF v_held + p_quantity > p_max_held THEN                                          -- 8
            PERFORM sk_fail('hold_limit_reached',
                format('at most %s units of %s held at once', p_max_held, v_item.sku),
                jsonb_build_object('sku', v_item.sku, 'limit', p_max_held, 'held', v_held));
        END IF;
        PERFORM sk_take_stock(p_game, v_item.sku, p_quantity);                            -- 9
        INSERT INTO holds (game_id, player_id, id, sku, quantity, expires_at)
        VALUES (p_game, p_player, gen_random_uuid(), v_item.sku, p_quantity,
                now() + make_interval(secs => p_hold_seconds))
        RETURNING * INTO v_hold;
        status := 201;
        body := jsonb_build_object('hold', sk_hold_json(v_hold))::text;
    EXCEPTION WHEN SQLSTATE 'SKB01' THEN
        GET STACKED DIAGNOSTICS v_code = MESSAGE_TEXT, v_message = PG_EXCEPTION_HINT,
                                v_details = PG_EXCEPTION_DETAIL;
        status := 409;
        body := sk_error_body(v_code, v_message, v_details, p_request_id);
    END;
    PERFORM sk_idempotency_finish(p_game, p_player, p_key, p_fingerprint, p_ttl_seconds,
                                  status, body);
END $$;

-- Releases the player's hold: its units go back on sale at once. Idempotent: a hold that has
-- ended already (consumed, released, expired) is returned as it stands; one past its expiry
-- whose units are still out is ended as expired, and its units go back the same way.
CREATE OR REPLACE FUNCTION sk_release_hold(p_game text, p_player text, p_hold_id uuid)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_hold holds;
BEGIN
    SELECT * INTO v_hold FROM holds
     WHERE game_id = p_game AND player_id = p_player AND id = p_hold_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM sk_not_found(format('no hold %s', p_hold_id));
    END IF;
    IF v_hold.status = 'active' THEN
        UPDATE holds
           SET status = CASE WHEN expires_at <= now() THEN 'expired' ELSE 'released' END,
               ended_at = now()
         WHERE game_id = p_game AND player_id = p_player AND id = p_hold_id
        RETURNING * INTO v_hold;
        PERFORM sk_return_stock(p_game, v_hold.sku, v_hold.quantity);
    END IF;
    RETURN jsonb_build_object('hold', sk_hold_json(v_hold));
END $$;
