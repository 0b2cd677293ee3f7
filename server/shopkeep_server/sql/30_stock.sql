-- Live stock of limited items, spread over buckets (stock_buckets) so a drop does not queue on
-- one hot row. store/catalog.py reads it with sk_stock_remaining. A bucket's `remaining` counts
-- units neither sold nor held: a hold takes its units out with sk_take_stock (31_holds.sql).

-- Takes p_quantity units of a limited item. The fast path takes them all from one random
-- bucket that is not locked by another buyer; near the end of a drop it first puts back the
-- units of expired holds, then locks every non-empty bucket in order and takes what is left,
-- so "sold out" is only ever said when it is true.
-- Returns whether it left a bucket empty (the item may have sold out: sk_check_sold_out).
--
-- Lock order (31_holds.sql states the whole order): the slow path locks hold rows, then one
-- bucket at a time in bucket order, and it must start holding no bucket. The fast path's look
-- can leave one locked: under READ COMMITTED, FOR UPDATE SKIP LOCKED locks a bucket that a
-- buyer who committed after this statement's snapshot has just emptied, finds it no longer
-- has the units (the re-check of the WHERE on the newest row), skips it and returns nothing,
-- but keeps the lock until the transaction ends. The slow path would then wait for expired
-- holds (whose reclaimer waits to put their units into that bucket) and for lower buckets
-- (whose holder waits for that one) while holding it: a deadlock. So the look runs in a block
-- of its own, and a look that took nothing is rolled back, its stray lock with it.
CREATE OR REPLACE FUNCTION sk_take_stock(p_game text, p_sku text, p_quantity bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_buckets integer;
    v_offset integer;
    v_bucket integer;
    v_need bigint := p_quantity;
    v_take bigint;
    v_emptied boolean := false;
    r record;
BEGIN
    SELECT buckets INTO v_buckets FROM stock_levels WHERE game_id = p_game AND sku = p_sku;
    IF NOT FOUND THEN
        PERFORM sk_fail('sold_out', format('%s is sold out', p_sku),
                        jsonb_build_object('sku', p_sku));
    END IF;
    v_offset := floor(random() * v_buckets)::integer;
    BEGIN
        SELECT bucket INTO v_bucket FROM stock_buckets
         WHERE game_id = p_game AND sku = p_sku AND remaining >= p_quantity
         ORDER BY (bucket + v_offset) % v_buckets
         LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            UPDATE stock_buckets SET remaining = remaining - p_quantity
             WHERE game_id = p_game AND sku = p_sku AND bucket = v_bucket
            RETURNING remaining = 0 INTO v_emptied;
            RETURN v_emptied;
        END IF;
        -- Nothing taken: leave the block by an error, which rolls the look back (a condition
        -- nothing in the block raises otherwise: its SELECT INTO and UPDATE are not STRICT).
        RAISE no_data_found;
    EXCEPTION WHEN no_data_found THEN
        NULL;
    END;
    -- Holds first, then buckets in order: the units of expired holds go back into bucket 0,
    -- the first one the loop below locks, so no bucket is held out of that order.
    PERFORM sk_reclaim_expired_holds(p_game, p_sku, 0);
    FOR r IN SELECT bucket, remaining FROM stock_buckets
              WHERE game_id = p_game AND sku = p_sku AND remaining > 0
              ORDER BY bucket FOR UPDATE LOOP
        v_take := least(r.remaining, v_need);
        UPDATE stock_buckets SET remaining = remaining - v_take
         WHERE game_id = p_game AND sku = p_sku AND bucket = r.bucket;
        v_need := v_need - v_take;
        v_emptied := v_emptied OR v_take = r.remaining;
        EXIT WHEN v_need = 0;
    END LOOP;
    IF v_need > 0 THEN
        PERFORM sk_fail('sold_out', format('%s is sold out', p_sku),
            jsonb_build_object('sku', p_sku, 'requested', p_quantity,
                               'remaining', p_quantity - v_need));
    END IF;
    RETURN v_emptied;
END $$;

-- What others can buy now: the units in the buckets plus those of holds past their expiry that
-- no take has put back yet. Units in usable holds are not counted.
CREATE OR REPLACE FUNCTION sk_stock_remaining(p_game text, p_sku text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT (SELECT coalesce(sum(remaining), 0) FROM stock_buckets
             WHERE game_id = p_game AND sku = p_sku)::bigint
         + (SELECT coalesce(sum(quantity), 0) FROM holds
             WHERE game_id = p_game AND sku = p_sku AND status = 'active'
               AND expires_at <= now())::bigint
$$;
