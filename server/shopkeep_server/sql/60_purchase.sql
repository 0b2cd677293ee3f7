-- A player buys p_quantity of p_sku, exactly once per idempotency key, in one statement.
-- With p_hold_id (NULL by default) the units come from that hold of the player's, not from
-- the free stock (sql/31_holds.sql).
--
-- The order in which a purchase is checked: when several rejections apply, the first one in
-- this list is the answer. Steps 1 to 4 are not stored with the key (404 / 422: the whole
-- statement fails and the key stays free); from step 5 on a rejection is a final 409, stored
-- with the key and replayed, with nothing else changed.
--   0. the key: a stored outcome is replayed as it is (idempotency_key_reused if the same key
--      came with a different request, idempotency_key_in_use while its twin is in flight);
--  0a. account_frozen (403, not stored): the player is frozen (a key that already has an
--      outcome still replays it; any other key is left unclaimed). sk_risk_admit also notes
--      the player as seen (sk_player_seen, 22_players.sql): the offers' segments read it;
--   1. not_found: the game has no published catalog;
--   2. not_found: the sku is not in the live catalog;
--  2a. not_found, the same answer: the item is one only a segment sees and the player is not in
--      it now (sk_item_hidden_from in 66_offers.sql, which the catalog view hides it by too);
--   3. validation_failed (currency): no currency given and the item has several prices;
--   4. validation_failed (currency): the item is not sold for that currency;
--  4a. with hold_id: not_found when the player has no such hold, validation_failed (hold_id)
--      when it is for another sku or quantity (sql/31_holds.sql);
--  4b. debt_outstanding: the player owes what a store chargeback could not take back
--      (64_receipts.sql);
--   5. price_changed: expected_price given and not the player's unit price in that currency
--      now (the list price, or an offer's: sk_offer_price in 66_offers.sql, the one function
--      the player's catalog view prices with too);
--  5a. with hold_id: hold_expired when the hold has expired, was released or was used;
--   6. item_unavailable: outside the item's available_from / available_until window (not
--      with a usable hold: its units were set aside while the item was on sale);
--   7. sold_out: a limited item with fewer units left than asked for (a look without locks;
--      not with a hold, whose units are the buyer's);
--   8. insufficient_funds: the balance is less than unit price x quantity (wallets locked);
--  8a. limit_exceeded (rule tier): the player's trust tier forbids this item (a limited one)
--      or this total price (sql/65_risk.sql, as every 8x step);
--  8b. limit_exceeded (rule spend_limit): a spend limit of this currency, in the policy's order,
--      count before amount (wallets still locked, so concurrent purchases are counted);
--   9. purchase_limit_reached: past the item's per_player_limit (completed purchases, and
--      the units of the player's other usable holds);
--  9b. purchase_limit_reached: past the per_player_limit of the offer that priced it;
--  10. purchase_limit_reached: a durable item bought twice, or more than one at a time;
--  11. sold_out: the stock is taken under lock (a concurrent buyer took the last units);
--      with a hold, the hold is consumed instead, under its lock: hold_expired when it
--      ended meanwhile (expired, released or used by another request);
--  12. purchase_limit_reached: a bundle holds a durable item the player already owns;
--  13. balance_cap_exceeded: a bundle's currency would pass its max_balance.
--
-- Lock order, shared with grants and refunds: wallets (by currency), the player's count for
-- this sku, the player's count for the offer, holds, stock buckets, inventory rows (by sku),
-- then wallets are changed.
CREATE OR REPLACE FUNCTION sk_purchase(
    p_game text, p_player text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer, p_request_id text,
    p_sku text, p_quantity integer, p_currency text,
    p_expected_currency text, p_expected_amount bigint, p_hold_id uuid DEFAULT NULL,
    OUT status integer, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_live record;
    v_item catalog_items;
    v_currency text := p_currency;
    v_unit bigint;
    v_offer_id text;
    v_offer record;
    v_total bigint;
    v_balance bigint;
    v_remaining bigint;
    v_purchased bigint;
    v_held bigint;
    v_hold holds;
    v_purchase purchases;
    v_id uuid;
    v_reference text;
    v_contents record;
    v_ledger jsonb := '[]';
    v_entry ledger_entries;
    v_purchase_json jsonb;
    v_may_sell_out boolean := false;
    v_code text;
    v_message text;
    v_details text;
    v_start record;
BEGIN
    v_start := sk_operation_start(p_game, p_player, p_player, p_key, p_fingerprint,  -- 0, 0a
                                  p_ttl_seconds, p_wait_ms, 'purchase', p_request_id);
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
           OR sk_item_hidden_from(p_game, p_player, v_live.version_id, v_item.sku) THEN   -- 2a
            PERFORM sk_not_found(format('no item %s in the live catalog', p_sku));
        END IF;
        IF v_currency IS NULL THEN                                                        -- 3
            IF jsonb_array_length(v_item.prices) > 1 THEN
                PERFORM sk_invalid('currency', 'required: this item has several prices');
            END IF;
            v_currency := v_item.prices->0->>'currency';
        END IF;
        SELECT (e->>'amount')::bigint INTO v_unit
          FROM jsonb_array_elements(v_item.prices) e WHERE e->>'currency' = v_currency;
        IF v_unit IS NULL THEN                                                            -- 4
            PERFORM sk_invalid('currency', format('%s is not sold for %s', v_item.sku, v_currency));
        END IF;
        IF p_hold_id IS NOT NULL THEN                                                     -- 4a
            v_hold := sk_hold_for(p_game, p_player, p_hold_id, v_item.sku, p_quantity, false);
        END IF;
        v_offer := sk_offer_price(p_game, p_player, v_live.version_id, v_item.sku, v_currency,
                                  v_unit, now(), NULL);
        v_unit := v_offer.amount;
        v_offer_id := v_offer.offer_id;

        PERFORM sk_check_debt(p_game, p_player);                                         -- 4b
        IF p_expected_currency IS NOT NULL                                                -- 5
           AND (p_expected_currency <> v_currency OR p_expected_amount <> v_unit) THEN
            PERFORM sk_fail('price_changed', 'the price is not the one the player saw',
                jsonb_build_object(
                    'expected', jsonb_build_object('currency', p_expected_currency,
                                                   'amount', p_expected_amount),
                    'current', jsonb_build_object('currency', v_currency, 'amount', v_unit),
                    'catalog_version', v_live.version));
        END IF;
        IF p_hold_id IS NOT NULL THEN                                                     -- 5a
            PERFORM sk_check_hold_usable(v_hold);
        END IF;
        IF p_hold_id IS NULL AND (                                                        -- 6
           (v_item.available_from IS NOT NULL AND now() < v_item.available_from)
           OR (v_item.available_until IS NOT NULL AND now() >= v_item.available_until)) THEN
            PERFORM sk_fail('item_unavailable', format('%s is not on sale now', v_item.sku),
                jsonb_build_object('sku', v_item.sku,
                                   'available_from', sk_ts(v_item.available_from),
                                   'available_until', sk_ts(v_item.available_until)));
        END IF;
        -- A look at the stock without locking anything: once a drop is gone, buyers hear
        -- "sold out" (not "not enough coins") and never queue on a wallet. sk_take_stock
        -- below is what actually guards the stock. While one bucket alone still holds the
        -- units the total needs no sum over every bucket and hold (most of a drop's sales).
        IF v_item.stock IS NOT NULL AND p_hold_id IS NULL                                 -- 7
           AND NOT EXISTS (SELECT FROM stock_buckets
                            WHERE game_id = p_game AND sku = v_item.sku
                              AND remaining >= p_quantity) THEN
            v_remaining := sk_stock_remaining(p_game, v_item.sku);
            IF v_remaining < p_quantity THEN
                PERFORM sk_fail('sold_out', format('%s is sold out', v_item.sku),
                    jsonb_build_object('sku', v_item.sku, 'requested', p_quantity,
                                       'remaining', v_remaining));
            END IF;
        END IF;

        v_total := v_unit * p_quantity;
        PERFORM sk_lock_wallets(p_game, p_player,
                                array_append(sk_contents_currencies(v_item), v_currency));
        v_balance := sk_balance(p_game, p_player, v_currency);
        IF v_balance < v_total THEN                                                       -- 8
            PERFORM sk_fail('insufficient_funds', format('not enough %s', v_currency),
                jsonb_build_object('currency', v_currency, 'required', v_total,
                                   'balance', v_balance));
        END IF;
        PERFORM sk_risk_check_purchase(p_game, p_player, v_live.version_id, v_item,   -- 8a, 8b
                                       v_currency, v_total);
        -- The count row is also the lock that serializes one player's purchases of one sku.
        IF v_item.per_player_limit IS NOT NULL OR v_item.kind = 'durable' THEN            -- 9
            INSERT INTO player_item_counts AS c (game_id, player_id, sku, purchased)
            VALUES (p_game, p_player, v_item.sku, p_quantity)
            ON CONFLICT (game_id, player_id, sku)
            DO UPDATE SET purchased = c.purchased + EXCLUDED.purchased
            RETURNING purchased INTO v_purchased;
            v_held := sk_held_units(p_game, p_player, v_item.sku, p_hold_id);
            IF v_purchased + v_held > v_item.per_player_limit THEN
                PERFORM sk_fail('purchase_limit_reached',
                    format('at most %s of %s per player', v_item.per_player_limit, v_item.sku),
                    jsonb_build_object('sku', v_item.sku, 'limit', v_item.per_player_limit,
                                       'purchased', v_purchased - p_quantity)
                    || CASE WHEN v_held > 0 THEN jsonb_build_object('held', v_held)
                            ELSE '{}' END);
            END IF;
        END IF;
        -- sk_grant_contents checks this too; checking here first keeps a refused buyer off
        -- the hot stock rows of a limited durable.
        IF v_item.kind = 'durable'                                                        -- 10
           AND (p_quantity > 1 OR sk_owned(p_game, p_player, v_item.sku) > 0) THEN
            PERFORM sk_fail('purchase_limit_reached',
                format('%s is durable and already owned', v_item.sku),
                jsonb_build_object('sku', v_item.sku, 'limit', 1));
        END IF;
        IF v_offer_id IS NOT NULL THEN                                                    -- 9b
            PERFORM sk_offer_take(p_game, p_player, v_live.version_id, v_item.sku, v_offer_id,
                                  p_quantity);
        END IF;
        v_id := gen_random_uuid();
        v_reference := sk_purchase_reference(v_id, v_offer_id);
        IF p_hold_id IS NOT NULL THEN                                                     -- 11
            -- The hold names its purchase alone (the ledger reference adds the offer).
            PERFORM sk_consume_hold(p_game, p_player, p_hold_id, v_item.sku, p_quantity,
                                    'purchase:' || v_id);
            v_may_sell_out := true;  -- the hold's units were the last ones out, maybe
        ELSIF v_item.stock IS NOT NULL THEN
            v_may_sell_out := sk_take_stock(p_game, v_item.sku, p_quantity);
        END IF;
        IF v_total > 0 THEN
            v_entry := sk_wallet_write(p_game, p_player, v_currency, -v_total, NULL, 'purchase',
                                       v_reference);
            v_ledger := jsonb_build_array(sk_ledger_entry_json(v_entry));
        END IF;
        v_contents := sk_grant_contents(p_game, p_player, v_live.version_id, v_item,   -- 12, 13
                                        p_quantity, 'purchase', v_reference);
        INSERT INTO purchases (id, game_id, player_id, sku, quantity, currency, unit_price,
                               total_price, catalog_version, status, granted, idempotency_key,
                               offer_id)
        VALUES (v_id, p_game, p_player, v_item.sku, p_quantity, v_currency, v_unit, v_total,
                v_live.version, 'completed', v_contents.granted, p_key, v_offer_id)
        RETURNING * INTO v_purchase;
        -- The event carries the rows just written (the debit first: the ledger's order).
        v_purchase_json := sk_purchase_json(v_purchase);
        PERFORM sk_emit_purchase_event('purchase.completed', p_game, p_player, v_purchase_json,
                                       v_ledger || v_contents.ledger, v_contents.item_ledger);
        IF v_may_sell_out THEN
            PERFORM sk_check_sold_out(p_game, v_item.sku, p_player);
        END IF;
        status := 201;
        body := jsonb_build_object(
            'purchase', v_purchase_json,
            'balances', sk_balances_json(p_game, p_player, v_live.version_id),
            'granted', v_contents.granted)::text;
    EXCEPTION WHEN SQLSTATE 'SKB01' THEN
        GET STACKED DIAGNOSTICS v_code = MESSAGE_TEXT, v_message = PG_EXCEPTION_HINT,
                                v_details = PG_EXCEPTION_DETAIL;
        status := 409;
        body := sk_error_body(v_code, v_message, v_details, p_request_id);
        PERFORM sk_risk_refused(p_game, p_player, 'purchase', v_code, v_details);
    END;
    PERFORM sk_idempotency_finish(p_game, p_player, p_key, p_fingerprint, p_ttl_seconds,
                                  status, body);
END $$;
