-- A service account (p_actor, the key's subject) gives a player currency (p_currency and
-- p_amount) or an item (p_sku and p_quantity; a bundle gives its contents), exactly once per
-- idempotency key, in one statement. A currency outside the live catalog is a 422 and an
-- unknown sku a 404 (neither stored); a durable already owned or a balance past its cap is a
-- stored 409.
CREATE OR REPLACE FUNCTION sk_grant(
    p_game text, p_actor text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer, p_request_id text,
    p_player text, p_reason text, p_currency text, p_amount bigint,
    p_sku text, p_quantity bigint,
    OUT status integer, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_live record;
    v_item catalog_items;
    v_currency catalog_currencies;
    v_id uuid;
    v_reference text;
    v_granted jsonb;
    v_ledger jsonb := '[]';
    v_entry ledger_entries;
    v_item_ledger jsonb := '[]';
    v_contents record;
    v_grant jsonb;
    v_code text;
    v_message text;
    v_details text;
    v_start record;
BEGIN
    v_start := sk_operation_start(p_game, p_player, p_actor, p_key, p_fingerprint,  -- 0, 0a
                                  p_ttl_seconds, p_wait_ms, 'grant', p_request_id);
    status := v_start.status;
    body := v_start.body;
    replayed := v_start.replayed;
    IF status IS NOT NULL THEN
        RETURN;
    END IF;
    BEGIN
        v_live := sk_live_version(p_game);
        v_id := gen_random_uuid();
        v_reference := 'grant:' || v_id;
        IF p_currency IS NOT NULL THEN
            SELECT * INTO v_currency FROM catalog_currencies
             WHERE version_id = v_live.version_id AND code = p_currency;
            IF NOT FOUND THEN
                PERFORM sk_invalid('currency',
                    format('%s is not a currency of the live catalog', p_currency));
            END IF;
            PERFORM sk_lock_wallets(p_game, p_player, ARRAY[v_currency.code]);
            v_entry := sk_wallet_write(p_game, p_player, v_currency.code, p_amount,
                                       v_currency.max_balance, 'grant', v_reference);
            v_ledger := jsonb_build_array(sk_ledger_entry_json(v_entry));
            v_granted := jsonb_build_array(jsonb_build_object('currency', v_currency.code,
                                                              'amount', p_amount));
        ELSE
            SELECT * INTO v_item FROM catalog_items
             WHERE version_id = v_live.version_id AND sku = p_sku;
            IF NOT FOUND THEN
                PERFORM sk_not_found(format('no item %s in the live catalog', p_sku));
            END IF;
            PERFORM sk_lock_wallets(p_game, p_player, sk_contents_currencies(v_item));
            v_contents := sk_grant_contents(p_game, p_player, v_live.version_id, v_item,
                                            p_quantity, 'grant', v_reference);
            v_granted := v_contents.granted;
            v_ledger := v_contents.ledger;
            v_item_ledger := v_contents.item_ledger;
        END IF;
        PERFORM sk_risk_check_grant(p_game, p_player, v_live.version_id, v_granted);
        INSERT INTO grants (id, game_id, player_id, currency, amount, sku, quantity, reason,
                            granted_by)
        VALUES (v_id, p_game, p_player, p_currency, p_amount, p_sku, p_quantity, p_reason,
                p_actor);
        v_grant := sk_grant_json(v_id, p_player, p_reason, v_granted, now());
        PERFORM sk_grant_event(p_game, v_grant, v_ledger, v_item_ledger);
        status := 201;
        body := jsonb_build_object(
            'grant', v_grant,
            'balances', sk_balances_json(p_game, p_player, v_live.version_id),
            'inventory', sk_inventory_json(p_game, p_player))::text;
    EXCEPTION WHEN SQLSTATE 'SKB01' THEN
        GET STACKED DIAGNOSTICS v_code = MESSAGE_TEXT, v_message = PG_EXCEPTION_HINT,
                                v_details = PG_EXCEPTION_DETAIL;
        status := 409;
        body := sk_error_body(v_code, v_message, v_details, p_request_id);
        PERFORM sk_risk_refused(p_game, p_player, 'grant', v_code, v_details);
    END;
    PERFORM sk_idempotency_finish(p_game, p_actor, p_key, p_fingerprint, p_ttl_seconds,
                                  status, body);
END $$;
