-- A service account (p_actor, the key's subject) refunds a purchase, exactly once per
-- idempotency key, in one statement: the price goes back to the player and what the purchase
-- granted is taken back. An unknown purchase is a 404; a refund whose granted items or
-- currency have been used up is a stored 409 (not_enough_items); refunding twice changes
-- nothing and answers with the purchase as it stands.
CREATE OR REPLACE FUNCTION sk_refund(
    p_game text, p_actor text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer, p_request_id text,
    p_purchase_id uuid, p_reason text,
    OUT status integer, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_purchase purchases;
    v_reference text;
    v_currencies text[];
    g record;
    v_balance bigint;
    v_cap bigint;
    v_code text;
    v_message text;
    v_details text;
BEGIN
    SELECT b.status, b.body INTO status, body
      FROM sk_idempotency_begin(p_game, p_actor, p_key, p_fingerprint, p_ttl_seconds,
                                p_wait_ms) b;
    replayed := status IS NOT NULL;
    IF replayed THEN
        RETURN;
    END IF;
    BEGIN
        SELECT * INTO v_purchase FROM purchases
         WHERE game_id = p_game AND id = p_purchase_id FOR UPDATE;
        IF NOT FOUND THEN
            PERFORM sk_not_found('no such purchase');
        END IF;
        status := 200;
        IF v_purchase.status = 'refunded' THEN
            body := jsonb_build_object('purchase', sk_purchase_json(v_purchase))::text;
        ELSE
            v_reference := 'refund:' || v_purchase.id;
            SELECT array_agg(e->>'currency') INTO v_currencies
              FROM jsonb_array_elements(v_purchase.granted) e WHERE e ? 'currency';
            PERFORM sk_lock_wallets(p_game, v_purchase.player_id,
                                    array_append(coalesce(v_currencies, '{}'),
                                                 v_purchase.currency));
            PERFORM sk_risk_check_refund(p_game, v_purchase.player_id);
            -- A refunded purchase no longer counts against the per-player limit. Same lock
            -- order as a purchase: wallets, then this count, then inventory.
            UPDATE player_item_counts SET purchased = purchased - v_purchase.quantity
             WHERE game_id = p_game AND player_id = v_purchase.player_id
               AND sku = v_purchase.sku;
            PERFORM sk_offer_untake(v_purchase);
            -- Take back what was granted: items (sku order), then currencies (code order).
            FOR g IN SELECT e->>'sku' AS sku, (e->>'quantity')::bigint AS quantity
                       FROM jsonb_array_elements(v_purchase.granted) e
                      WHERE e ? 'sku' ORDER BY 1 LOOP
                PERFORM sk_inventory_change(p_game, v_purchase.player_id, g.sku, -g.quantity,
                                            'refund', v_reference);
            END LOOP;
            FOR g IN SELECT e->>'currency' AS currency, (e->>'amount')::bigint AS amount
                       FROM jsonb_array_elements(v_purchase.granted) e
                      WHERE e ? 'currency' ORDER BY 1 LOOP
                v_balance := sk_balance(p_game, v_purchase.player_id, g.currency);
                IF v_balance < g.amount THEN
                    PERFORM sk_fail('not_enough_items',
                        format('the %s granted by this purchase has been spent', g.currency),
                        jsonb_build_object('currency', g.currency, 'required', g.amount,
                                           'balance', v_balance));
                END IF;
                PERFORM sk_wallet_change(p_game, v_purchase.player_id, g.currency, -g.amount,
                                         NULL, 'refund', v_reference);
            END LOOP;
            IF v_purchase.total_price > 0 THEN
                SELECT cc.max_balance INTO v_cap FROM games gm
                  JOIN catalog_currencies cc
                    ON cc.version_id = gm.live_version_id AND cc.code = v_purchase.currency
                 WHERE gm.id = p_game;
                PERFORM sk_wallet_change(p_game, v_purchase.player_id, v_purchase.currency,
                                         v_purchase.total_price, v_cap, 'refund', v_reference);
            END IF;
            UPDATE purchases SET status = 'refunded', refunded_at = now(), refund_reason = p_reason
             WHERE game_id = p_game AND player_id = v_purchase.player_id
               AND seq = v_purchase.seq
            RETURNING * INTO v_purchase;
            PERFORM sk_refund_event(v_purchase);
            body := jsonb_build_object('purchase', sk_purchase_json(v_purchase))::text;
        END IF;
    EXCEPTION WHEN SQLSTATE 'SKB01' THEN
        GET STACKED DIAGNOSTICS v_code = MESSAGE_TEXT, v_message = PG_EXCEPTION_HINT,
                                v_details = PG_EXCEPTION_DETAIL;
        status := 409;
        body := sk_error_body(v_code, v_message, v_details, p_request_id);
        PERFORM sk_risk_refused(p_game, v_purchase.player_id, 'refund', v_code, v_details);
    END;
    PERFORM sk_idempotency_finish(p_game, p_actor, p_key, p_fingerprint, p_ttl_seconds,
                                  status, body);
END $$;
