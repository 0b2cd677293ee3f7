-- Personalized offers (issue 15): what a player pays, and why. The catalog view
-- (store/offers.py) and the purchase (60_purchase.sql) both price through sk_offer_price, so
-- the price a player is shown and the price it is charged come from one function, evaluated
-- in the purchase's own transaction.

-- The one rounding rule of a discount, in integers of the currency's minor unit: a
-- percentage off rounds half up to the minor unit, ((list x (100 - percent)) + 50) div 100
-- (a price of 10 at 33% off is 6.7, charged 7; 1.5 would be 2); an amount off never goes
-- below 0; an override is the price as written. docs/api.md states the same.
CREATE OR REPLACE FUNCTION sk_offer_amount(
    p_list bigint, p_price bigint, p_percent integer, p_off bigint
) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_price IS NOT NULL THEN p_price
        WHEN p_percent IS NOT NULL THEN (p_list * (100 - p_percent) + 50) / 100
        ELSE greatest(p_list - p_off, 0)
    END
$$;

-- The ledger reference of a purchase: it names the offer that priced it, when one did.
CREATE OR REPLACE FUNCTION sk_purchase_reference(p_id uuid, p_offer_id text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- p_id::text, not uuid || text: that operator is STABLE, and this function would not be
    -- inlined.
    SELECT 'purchase:' || p_id::text || coalesce(':offer:' || p_offer_id, '')
$$;

-- The player is seen (first_seen, its country): sk_player_seen, in 22_players.sql.

-- What the segment rules can ask about a player (store/segments.py names them): first_seen,
-- country, attr (the studio's key-values), last_purchase and spend (per currency, from the
-- completed purchases), plus what offers need: the offers its codes unlocked and the units it
-- bought at each limited offer. Timestamps are JSON strings (sk_ts). Without p_purchases the
-- two facts read from the player's purchases (last_purchase, spend) are left out: a catalog
-- whose rules never ask for them does not scan a big spender's purchases on every view.
CREATE OR REPLACE FUNCTION sk_player_facts(
    p_game text, p_player text, p_purchases boolean DEFAULT true
) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'first_seen', sk_ts(pp.first_seen),
        'country', pp.country,
        'attr', coalesce(pp.attributes, '{}'),
        'last_purchase', (SELECT sk_ts(max(p.created_at)) FROM purchases p
                           WHERE p_purchases AND p.game_id = p_game
                             AND p.player_id = p_player AND p.status = 'completed'),
        'spend', (SELECT coalesce(jsonb_object_agg(s.currency, s.total), '{}')
                    FROM (SELECT p.currency, sum(p.total_price) AS total FROM purchases p
                           WHERE p_purchases AND p.game_id = p_game
                             AND p.player_id = p_player AND p.status = 'completed'
                           GROUP BY p.currency) s),
        'unlocked', (SELECT coalesce(jsonb_agg(r.offer_id), '[]') FROM promo_redemptions r
                      WHERE r.game_id = p_game AND r.player_id = p_player
                        AND r.offer_id IS NOT NULL),
        'offers', (SELECT coalesce(jsonb_object_agg(c.offer_id, c.purchased), '{}')
                     FROM player_offer_counts c
                    WHERE c.game_id = p_game AND c.player_id = p_player)))
      FROM (SELECT) AS one
      LEFT JOIN player_profiles pp ON pp.game_id = p_game AND pp.player_id = p_player
$$;

-- Whether any offer rule or segment-only item's rule of a version asks about purchases (a
-- compiled rule's path names spend or last_purchase: store/segments.py).
CREATE OR REPLACE FUNCTION sk_rules_read_purchases(p_version_id bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM catalog_offers
                    WHERE version_id = p_version_id
                      AND rule::text ~ '"(spend|last_purchase)"')
        OR EXISTS (SELECT 1 FROM catalog_item_segments
                    WHERE version_id = p_version_id
                      AND rule::text ~ '"(spend|last_purchase)"')
$$;

-- Evaluates a compiled segment rule (store/segments.py) against a player's facts at p_at.
-- A condition on a fact the player does not have is false; NULL (no segment) is everyone.
CREATE OR REPLACE FUNCTION sk_rule_matches(p_rule jsonb, p_facts jsonb, p_at timestamptz)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_op text := p_rule->>'op';
    v_path text[];
    v_value jsonb;
    v_seen timestamptz;
    v_part jsonb;
BEGIN
    IF p_rule IS NULL OR jsonb_typeof(p_rule) = 'null' THEN
        RETURN true;
    END IF;
    IF v_op = 'and' THEN
        FOR v_part IN SELECT jsonb_array_elements(p_rule->'args') LOOP
            IF NOT sk_rule_matches(v_part, p_facts, p_at) THEN
                RETURN false;
            END IF;
        END LOOP;
        RETURN true;
    ELSIF v_op = 'or' THEN
        FOR v_part IN SELECT jsonb_array_elements(p_rule->'args') LOOP
            IF sk_rule_matches(v_part, p_facts, p_at) THEN
                RETURN true;
            END IF;
        END LOOP;
        RETURN false;
    ELSIF v_op = 'not' THEN
        RETURN NOT sk_rule_matches(p_rule->'arg', p_facts, p_at);
    END IF;
    v_path := ARRAY(SELECT jsonb_array_elements_text(p_rule->'path'));
    IF v_op IN ('within', 'older_than') THEN
        v_seen := (p_facts #>> v_path)::timestamptz;
        IF v_seen IS NULL THEN
            RETURN false;
        ELSIF v_op = 'within' THEN
            RETURN v_seen > p_at - (p_rule->>'seconds')::bigint * interval '1 second';
        END IF;
        RETURN v_seen <= p_at - (p_rule->>'seconds')::bigint * interval '1 second';
    END IF;
    v_value := p_facts #> v_path;
    IF v_value IS NULL OR jsonb_typeof(v_value) <> jsonb_typeof(p_rule->'value') THEN
        RETURN false;
    END IF;
    RETURN CASE v_op
        WHEN '=' THEN v_value = p_rule->'value'
        WHEN '!=' THEN v_value <> p_rule->'value'
        WHEN '<' THEN v_value < p_rule->'value'
        WHEN '<=' THEN v_value <= p_rule->'value'
        WHEN '>' THEN v_value > p_rule->'value'
        WHEN '>=' THEN v_value >= p_rule->'value'
    END;
END $$;

-- The unit price p_player pays for p_sku in p_currency at p_at (list price p_list), and the
-- offer that gives it (NULL: the list price). Among the offers of the version for this sku
-- and currency that are open at p_at, unlocked (an offer a promo code names needs that code
-- redeemed), for the player's segment and under their per-player limit, the lowest price
-- wins (ties: the smallest offer id); a player never pays more than the list price. p_facts
-- may be NULL: they are read only when an offer needs them.
CREATE OR REPLACE FUNCTION sk_offer_price(
    p_game text, p_player text, p_version_id bigint, p_sku text, p_currency text,
    p_list bigint, p_at timestamptz, p_facts jsonb,
    OUT amount bigint, OUT offer_id text
) LANGUAGE plpgsql STABLE AS $$
DECLARE
    o catalog_offers;
    v_facts jsonb := p_facts;
    v_amount bigint;
BEGIN
    amount := p_list;
    FOR o IN SELECT * FROM catalog_offers c
              WHERE c.version_id = p_version_id AND c.sku = p_sku
                AND (c.currency IS NULL OR c.currency = p_currency)
                AND (c.starts_at IS NULL OR c.starts_at <= p_at)
                AND (c.ends_at IS NULL OR p_at < c.ends_at)
              ORDER BY c.offer_id LOOP
        IF v_facts IS NULL
           AND (o.rule IS NOT NULL OR o.requires_code OR o.per_player_limit IS NOT NULL) THEN
            v_facts := sk_player_facts(p_game, p_player,
                                       sk_rules_read_purchases(p_version_id));
        END IF;
        CONTINUE WHEN o.requires_code AND NOT (v_facts->'unlocked') ? o.offer_id;
        CONTINUE WHEN o.per_player_limit IS NOT NULL
                      AND coalesce((v_facts->'offers'->>o.offer_id)::bigint, 0)
                          >= o.per_player_limit;
        CONTINUE WHEN NOT sk_rule_matches(o.rule, v_facts, p_at);
        v_amount := sk_offer_amount(p_list, o.price, o.discount_percent, o.discount_amount);
        IF v_amount < amount THEN
            amount := v_amount;
            offer_id := o.offer_id;
        END IF;
    END LOOP;
END $$;

-- The player's own prices of a version, for the catalog view: one row per item and currency
-- an offer prices for this player (the others are at their list price).
CREATE OR REPLACE FUNCTION sk_catalog_prices(
    p_game text, p_player text, p_version_id bigint, p_at timestamptz
) RETURNS TABLE (sku text, currency text, amount bigint, offer_id text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_facts jsonb := sk_player_facts(p_game, p_player, sk_rules_read_purchases(p_version_id));
BEGIN
    RETURN QUERY
    SELECT i.sku, e->>'currency', p.amount, p.offer_id
      FROM catalog_items i
      CROSS JOIN LATERAL jsonb_array_elements(i.prices) e
      CROSS JOIN LATERAL sk_offer_price(p_game, p_player, p_version_id, i.sku, e->>'currency',
                                        (e->>'amount')::bigint, p_at, v_facts) p
     WHERE i.version_id = p_version_id
       AND i.sku IN (SELECT c.sku FROM catalog_offers c WHERE c.version_id = p_version_id)
       AND p.offer_id IS NOT NULL
     ORDER BY 1, 2;
END $$;

-- Items only a segment sees (an item's `segment`): the skus of a version's segment-only items
-- that p_player is not in at p_at, by the rule evaluator the offers price with. This one
-- function decides both what the player's catalog view leaves out (store/offers.py) and what
-- its purchase answers not_found for (sk_item_hidden_from). p_facts may be NULL: they are read
-- only when the version has such items.
CREATE OR REPLACE FUNCTION sk_hidden_items(
    p_game text, p_player text, p_version_id bigint, p_at timestamptz, p_facts jsonb DEFAULT NULL
) RETURNS SETOF text LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_facts jsonb := p_facts;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM catalog_item_segments WHERE version_id = p_version_id) THEN
        RETURN;
    END IF;
    IF v_facts IS NULL THEN
        v_facts := sk_player_facts(p_game, p_player, sk_rules_read_purchases(p_version_id));
    END IF;
    RETURN QUERY
    SELECT s.sku FROM catalog_item_segments s
     WHERE s.version_id = p_version_id AND NOT sk_rule_matches(s.rule, v_facts, p_at)
     ORDER BY s.sku;
END $$;

-- Step 2a of a purchase (60_purchase.sql): whether p_sku is an item only a segment sees that
-- p_player is not in now, so the purchase answers as for an sku the catalog does not hold.
-- Its callers (a purchase, a hold) noted the player as seen before the key (sk_risk_admit), so
-- a rule on first_seen holds for a player whose first call is a purchase. Other items cost one
-- primary-key look.
CREATE OR REPLACE FUNCTION sk_item_hidden_from(
    p_game text, p_player text, p_version_id bigint, p_sku text
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM catalog_item_segments
                    WHERE version_id = p_version_id AND sku = p_sku) THEN
        RETURN false;
    END IF;
    RETURN p_sku IN (SELECT h FROM sk_hidden_items(p_game, p_player, p_version_id, now()) h);
END $$;

-- A purchase at a limited offer counts against the player's limit for it: the count row is
-- taken under lock (after the sku's count, before the stock); past the limit is
-- purchase_limit_reached, naming the offer.
CREATE OR REPLACE FUNCTION sk_offer_take(
    p_game text, p_player text, p_version_id bigint, p_sku text, p_offer_id text,
    p_quantity integer
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_limit bigint;
    v_purchased bigint;
BEGIN
    SELECT per_player_limit INTO v_limit FROM catalog_offers
     WHERE version_id = p_version_id AND sku = p_sku AND offer_id = p_offer_id;
    IF v_limit IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO player_offer_counts AS c (game_id, player_id, offer_id, purchased)
    VALUES (p_game, p_player, p_offer_id, p_quantity)
    ON CONFLICT (game_id, player_id, offer_id)
    DO UPDATE SET purchased = c.purchased + EXCLUDED.purchased
    RETURNING purchased INTO v_purchased;
    IF v_purchased > v_limit THEN
        PERFORM sk_fail('purchase_limit_reached',
            format('at most %s of %s at offer %s per player', v_limit, p_sku, p_offer_id),
            jsonb_build_object('sku', p_sku, 'offer_id', p_offer_id, 'limit', v_limit,
                               'purchased', v_purchased - p_quantity));
    END IF;
END $$;

-- A refunded purchase no longer counts against its offer's per-player limit.
CREATE OR REPLACE FUNCTION sk_offer_untake(p_purchase purchases) RETURNS void
LANGUAGE sql AS $$
    UPDATE player_offer_counts SET purchased = purchased - p_purchase.quantity
     WHERE game_id = p_purchase.game_id AND player_id = p_purchase.player_id
       AND offer_id = p_purchase.offer_id AND purchased >= p_purchase.quantity
$$;

-- A player redeems a promo code of the live catalog, exactly once per idempotency key, and at
-- most once per player; the budget is counted under the code's row lock, so N concurrent
-- redemptions of a code with budget B succeed exactly min(N, B) times. The order:
--   0. the key (as a purchase);
--  0a. account_frozen (403, not stored): the player is frozen (65_risk.sql's sk_risk_admit,
--      which also notes the player as seen);
--   1. not_found: no published catalog, no such code, outside its window or its segment (one
--      answer for all, so a player learns nothing of codes it cannot use);
--   2. code_already_redeemed: this player redeemed it before (a final 409);
--   3. code_exhausted: its budget is used up (a final 409);
--   4. balance_cap_exceeded: what it grants would pass a max_balance (a final 409).
CREATE OR REPLACE FUNCTION sk_redeem_code(
    p_game text, p_player text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer, p_request_id text,
    p_code text,
    OUT status integer, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_live record;
    v_promo catalog_promo_codes;
    v_contents catalog_items;
    v_written record;
    v_granted jsonb := '[]';
    v_ledger jsonb := '[]';
    v_item_ledger jsonb := '[]';
    v_redeemed bigint;
    v_code text;
    v_message text;
    v_details text;
    v_start record;
BEGIN
    v_start := sk_operation_start(p_game, p_player, p_player, p_key, p_fingerprint,  -- 0, 0a
                                  p_ttl_seconds, p_wait_ms, 'redeem', p_request_id);
    status := v_start.status;
    body := v_start.body;
    replayed := v_start.replayed;
    IF status IS NOT NULL THEN
        RETURN;
    END IF;
    BEGIN
        v_live := sk_live_version(p_game);                                 -- 1
        SELECT * INTO v_promo FROM catalog_promo_codes
         WHERE version_id = v_live.version_id AND code = upper(p_code);
        IF NOT FOUND
           OR (v_promo.starts_at IS NOT NULL AND now() < v_promo.starts_at)
           OR (v_promo.ends_at IS NOT NULL AND now() >= v_promo.ends_at)
           OR (v_promo.rule IS NOT NULL
               AND NOT sk_rule_matches(v_promo.rule, sk_player_facts(p_game, p_player), now()))
        THEN
            PERFORM sk_not_found('no such code');
        END IF;
        INSERT INTO promo_redemptions (game_id, player_id, code, offer_id, catalog_version)
        VALUES (p_game, p_player, v_promo.code, v_promo.offer_id, v_live.version)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN                                                                 -- 2
            PERFORM sk_fail('code_already_redeemed', 'this code was redeemed already',
                            jsonb_build_object('code', v_promo.code));
        END IF;
        UPDATE promo_code_budgets SET redeemed = redeemed + 1
         WHERE game_id = p_game AND code = v_promo.code AND redeemed < budget
        RETURNING redeemed INTO v_redeemed;
        IF v_redeemed IS NULL THEN                                                        -- 3
            PERFORM sk_fail('code_exhausted', 'this code has been used up',
                            jsonb_build_object('code', v_promo.code));
        END IF;
        IF jsonb_array_length(v_promo.grant_contents) > 0 THEN                            -- 4
            v_contents := ROW(v_live.version_id, 'promo:' || v_promo.code, 'bundle', '[]',
                              v_promo.grant_contents, NULL, NULL, NULL, NULL)::catalog_items;
            PERFORM sk_lock_wallets(p_game, p_player, sk_contents_currencies(v_contents));
            v_written := sk_grant_contents(p_game, p_player, v_live.version_id, v_contents, 1,
                                           'grant', 'promo:' || v_promo.code);
            v_granted := v_written.granted;
            v_ledger := v_written.ledger;
            v_item_ledger := v_written.item_ledger;
            UPDATE promo_redemptions SET granted = v_granted
             WHERE game_id = p_game AND player_id = p_player AND code = v_promo.code;
        END IF;
        -- code.redeemed: the answer without balances and inventory, and the rows it wrote.
        PERFORM sk_emit_event(p_game, 'code.redeemed', p_player,
            jsonb_build_object('code', v_promo.code, 'offer_id', v_promo.offer_id,
                               'granted', v_granted, 'ledger', v_ledger,
                               'item_ledger', v_item_ledger));
        status := 200;
        body := jsonb_build_object(
            'code', v_promo.code, 'offer_id', v_promo.offer_id, 'granted', v_granted,
            'balances', sk_balances_json(p_game, p_player, v_live.version_id),
            'inventory', sk_inventory_json(p_game, p_player))::text;
    EXCEPTION WHEN SQLSTATE 'SKB01' THEN
        GET STACKED DIAGNOSTICS v_code = MESSAGE_TEXT, v_message = PG_EXCEPTION_HINT,
                                v_details = PG_EXCEPTION_DETAIL;
        status := 409;
        body := sk_error_body(v_code, v_message, v_details, p_request_id);
    END;
    PERFORM sk_idempotency_finish(p_game, p_player, p_key, p_fingerprint, p_ttl_seconds,
                                  status, body);
END $$;
