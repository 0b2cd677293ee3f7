-- Inventories: changed only with an item-ledger row.

-- Applies one signed change to an inventory row and writes its item-ledger row, which it
-- returns (an operation's event carries it from here).
CREATE OR REPLACE FUNCTION sk_inventory_write(
    p_game text, p_player text, p_sku text, p_delta bigint, p_kind text, p_reference text
) RETURNS item_ledger LANGUAGE plpgsql AS $$
DECLARE
    v_quantity bigint;
    v_entry item_ledger;
BEGIN
    IF p_delta > 0 THEN
        INSERT INTO inventories AS i (game_id, player_id, sku, quantity)
        VALUES (p_game, p_player, p_sku, p_delta)
        ON CONFLICT (game_id, player_id, sku)
        DO UPDATE SET quantity = i.quantity + EXCLUDED.quantity
        RETURNING quantity INTO v_quantity;
    ELSE
        UPDATE inventories SET quantity = quantity + p_delta
         WHERE game_id = p_game AND player_id = p_player AND sku = p_sku
           AND quantity + p_delta >= 0
        RETURNING quantity INTO v_quantity;
        IF NOT FOUND THEN
            PERFORM sk_fail('not_enough_items', format('not enough %s', p_sku),
                jsonb_build_object('sku', p_sku, 'required', -p_delta,
                                   'owned', sk_owned(p_game, p_player, p_sku)));
        END IF;
    END IF;
    INSERT INTO item_ledger (game_id, player_id, sku, delta, quantity_after, kind, reference)
    VALUES (p_game, p_player, p_sku, p_delta, v_quantity, p_kind, p_reference)
    RETURNING * INTO v_entry;
    RETURN v_entry;
END $$;

-- sk_inventory_write for callers that want the quantity after it.
CREATE OR REPLACE FUNCTION sk_inventory_change(
    p_game text, p_player text, p_sku text, p_delta bigint, p_kind text, p_reference text
) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN (sk_inventory_write(p_game, p_player, p_sku, p_delta, p_kind,
                               p_reference)).quantity_after;
END $$;

CREATE OR REPLACE FUNCTION sk_owned(p_game text, p_player text, p_sku text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT quantity FROM inventories
                      WHERE game_id = p_game AND player_id = p_player AND sku = p_sku), 0)
$$;
