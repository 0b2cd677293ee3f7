-- What an item gives: itself, or a bundle's items and currencies. Used by purchases and
-- grants; a refund takes back exactly what a purchase recorded in purchases.granted.

-- The currencies a bundle credits: locked with the paying currency before anything changes.
CREATE OR REPLACE FUNCTION sk_contents_currencies(p_item catalog_items) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(e->>'currency'), '{}')
      FROM jsonb_array_elements(p_item.contents) e WHERE e ? 'currency'
$$;

-- Grants what an item (or a bundle's contents) gives, p_times over: what was granted (the
-- purchase's and the grant's `granted`) and the ledger rows written, in the API's shapes and in
-- the order written (the event of the operation carries them).
CREATE OR REPLACE FUNCTION sk_grant_contents(
    p_game text, p_player text, p_version_id bigint, p_item catalog_items, p_times bigint,
    p_kind text, p_reference text,
    OUT granted jsonb, OUT ledger jsonb, OUT item_ledger jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    c record;
    v_kind text;
    v_entry ledger_entries;
    v_item_entry item_ledger;
BEGIN
    granted := '[]';
    ledger := '[]';
    item_ledger := '[]';
    IF p_item.kind <> 'bundle' THEN
        IF p_item.kind = 'durable'
           AND (p_times > 1 OR sk_owned(p_game, p_player, p_item.sku) > 0) THEN
            PERFORM sk_fail('purchase_limit_reached',
                format('%s is durable and already owned', p_item.sku),
                jsonb_build_object('sku', p_item.sku, 'limit', 1));
        END IF;
        v_item_entry := sk_inventory_write(p_game, p_player, p_item.sku, p_times, p_kind,
                                           p_reference);
        item_ledger := jsonb_build_array(sk_item_ledger_entry_json(v_item_entry));
        granted := jsonb_build_array(jsonb_build_object('sku', p_item.sku, 'quantity', p_times));
        RETURN;
    END IF;
    -- Items first in sku order, then currencies in code order: the fixed lock order.
    FOR c IN SELECT e->>'sku' AS sku, (e->>'quantity')::bigint AS quantity
               FROM jsonb_array_elements(p_item.contents) e WHERE e ? 'sku' ORDER BY 1 LOOP
        SELECT kind INTO v_kind FROM catalog_items WHERE version_id = p_version_id AND sku = c.sku;
        IF v_kind = 'durable'
           AND (c.quantity * p_times > 1 OR sk_owned(p_game, p_player, c.sku) > 0) THEN
            PERFORM sk_fail('purchase_limit_reached',
                format('the bundle holds %s, which is durable and already owned', c.sku),
                jsonb_build_object('sku', c.sku, 'limit', 1));
        END IF;
        v_item_entry := sk_inventory_write(p_game, p_player, c.sku, c.quantity * p_times,
                                           p_kind, p_reference);
        item_ledger := item_ledger || sk_item_ledger_entry_json(v_item_entry);
        granted := granted || jsonb_build_object('sku', c.sku, 'quantity', c.quantity * p_times);
    END LOOP;
    FOR c IN SELECT e->>'currency' AS currency, (e->>'amount')::bigint AS amount, cc.max_balance
               FROM jsonb_array_elements(p_item.contents) e
               JOIN catalog_currencies cc
                 ON cc.version_id = p_version_id AND cc.code = e->>'currency'
              ORDER BY 1 LOOP
        v_entry := sk_wallet_write(p_game, p_player, c.currency, c.amount * p_times,
                                   c.max_balance, p_kind, p_reference);
        ledger := ledger || sk_ledger_entry_json(v_entry);
        granted := granted
                   || jsonb_build_object('currency', c.currency, 'amount', c.amount * p_times);
    END LOOP;
END $$;
