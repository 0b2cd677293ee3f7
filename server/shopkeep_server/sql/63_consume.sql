-- A player uses up p_quantity of a consumable, exactly once per idempotency key, in one
-- statement; answers with what is left. An unknown sku is a 404, an item that is not a
-- consumable a 422 (neither stored); owning fewer than p_quantity is a stored 409.
CREATE OR REPLACE FUNCTION sk_consume(
    p_game text, p_player text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer, p_request_id text,
    p_sku text, p_quantity integer,
    OUT status integer, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_live record;
    v_kind text;
    v_left bigint;
    v_entry item_ledger;
    v_code text;
    v_message text;
    v_details text;
    v_start record;
BEGIN
    v_start := sk_operation_start(p_game, p_player, p_player, p_key, p_fingerprint,  -- 0, 0a
                                  p_ttl_seconds, p_wait_ms, 'consume', p_request_id);
    status := v_start.status;
    body := v_start.body;
    replayed := v_start.replayed;
    IF status IS NOT NULL THEN
        RETURN;
    END IF;
    BEGIN
        v_live := sk_live_version(p_game);
        SELECT kind INTO v_kind FROM catalog_items
         WHERE version_id = v_live.version_id AND sku = p_sku;
        IF NOT FOUND THEN
            PERFORM sk_not_found(format('no item %s in the live catalog', p_sku));
        END IF;
        IF v_kind <> 'consumable' THEN
            PERFORM sk_invalid('sku',
                format('%s is %s; only consumable items are consumed', p_sku, v_kind));
        END IF;
        v_entry := sk_inventory_write(p_game, p_player, p_sku, -p_quantity::bigint, 'consume',
                                      'consume:' || p_key);
        v_left := v_entry.quantity_after;
        PERFORM sk_consume_event(p_game, v_entry);
        status := 200;
        body := jsonb_build_object('sku', p_sku, 'quantity', v_left)::text;
    EXCEPTION WHEN SQLSTATE 'SKB01' THEN
        GET STACKED DIAGNOSTICS v_code = MESSAGE_TEXT, v_message = PG_EXCEPTION_HINT,
                                v_details = PG_EXCEPTION_DETAIL;
        status := 409;
        body := sk_error_body(v_code, v_message, v_details, p_request_id);
    END;
    PERFORM sk_idempotency_finish(p_game, p_player, p_key, p_fingerprint, p_ttl_seconds,
                                  status, body);
END $$;
