-- Real money in: a store transaction, verified by the server (store/receipts.py) before this
-- runs, credits what its product grants, exactly once per (game, store, transaction) forever;
-- a store's refund or chargeback takes it back (sk_chargeback). Ledger kinds `topup` and
-- `chargeback`. Each writes its event (receipt.redeemed, receipt.charged_back) in its own
-- transaction; a refusal rolls back before it, so it writes none. A top-up's repayment of a
-- debt is part of the top-up, and of its event (`repaid`, the `repay:` ledger rows).

-- A proof the store does not vouch for, or one naming no product of the live catalog: 422,
-- never stored (the same request may verify later, e.g. once a pending payment completes).
CREATE OR REPLACE FUNCTION sk_reject_receipt(p_code text, p_reason text, p_message text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SKV03', MESSAGE = p_code, HINT = p_message,
        DETAIL = jsonb_build_object('reason', p_reason)::text;
END $$;

CREATE OR REPLACE FUNCTION sk_receipt_json(r receipts) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', r.id, 'player_id', r.player_id, 'store', r.store,
        'transaction_id', r.transaction_id, 'product_id', r.product_id,
        'store_product_id', r.store_product_id, 'catalog_version', r.catalog_version,
        'status', r.status, 'granted', r.granted, 'created_at', sk_ts(r.created_at),
        'charged_back_at', sk_ts(r.charged_back_at))
$$;

-- What the player owes, per currency (empty when nothing).
CREATE OR REPLACE FUNCTION sk_debts_json(p_game text, p_player text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('currency', currency, 'amount', amount)
                              ORDER BY currency), '[]')
      FROM player_debts WHERE game_id = p_game AND player_id = p_player AND amount > 0
$$;

-- The purchase path's check (60_purchase.sql step 4a): a player who owes a chargeback buys
-- nothing until a top-up has repaid it.
CREATE OR REPLACE FUNCTION sk_check_debt(p_game text, p_player text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_debts jsonb := sk_debts_json(p_game, p_player);
BEGIN
    IF jsonb_array_length(v_debts) > 0 THEN
        PERFORM sk_fail('debt_outstanding',
            'a store refunded a top-up that was already spent: the next top-up repays it',
            jsonb_build_object('debts', v_debts));
    END IF;
END $$;

-- A chargeback as events show it: what a store took back, from which receipt, and why.
CREATE OR REPLACE FUNCTION sk_chargeback_json(c chargebacks, r receipts) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'receipt_id', c.receipt_id, 'player_id', c.player_id, 'store', r.store,
        'transaction_id', r.transaction_id, 'source', c.source, 'reason', c.reason,
        'policy', c.policy, 'taken', c.taken, 'owed', c.owed,
        'created_at', sk_ts(c.created_at))
$$;

-- The hold a receipt names (p_hold_id, of p_player), checked against the product it is for:
-- not_found (404) when the player has no such hold (another player's included), and
-- validation_failed (422, field hold_id) unless the product grants the held item in the held
-- quantity (an entry {sku, quantity} of its grants equal to the hold's). Not locked: the
-- credit consumes it under its lock (sk_consume_hold). store/receipts.py calls this before
-- the store hears the purchase is taken, sk_redeem_receipt again in its transaction.
CREATE OR REPLACE FUNCTION sk_receipt_hold(
    p_game text, p_player text, p_hold_id uuid, p_product_id text, p_grants jsonb
) RETURNS holds LANGUAGE plpgsql AS $$
DECLARE
    v_hold holds;
BEGIN
    SELECT * INTO v_hold FROM holds
     WHERE game_id = p_game AND player_id = p_player AND id = p_hold_id;
    IF NOT FOUND THEN
        PERFORM sk_not_found(format('no hold %s', p_hold_id));
    END IF;
    IF NOT EXISTS (SELECT FROM jsonb_array_elements(p_grants) e
                    WHERE e->>'sku' = v_hold.sku
                      AND (e->>'quantity')::bigint = v_hold.quantity) THEN
        PERFORM sk_invalid('hold_id',
            format('the hold is for %s x %s, which product %s does not grant',
                   v_hold.quantity, v_hold.sku, p_product_id));
    END IF;
    RETURN v_hold;
END $$;

-- Without a hold, a product must not grant a limited item: its units would leave the store
-- without being taken from the stock (a drop would oversell). Such a product is bought by
-- holding the units first (POST /v1/holds) and naming the hold; a receipt without one is
-- refused before the store is told the purchase is taken, so the player's payment is left
-- unconfirmed (and resent with a hold) instead of credited past the stock.
CREATE OR REPLACE FUNCTION sk_receipt_without_hold(
    p_version_id bigint, p_product_id text, p_grants jsonb
) RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_sku text;
BEGIN
    SELECT i.sku INTO v_sku
      FROM jsonb_array_elements(p_grants) e
      JOIN catalog_items i ON i.version_id = p_version_id AND i.sku = e->>'sku'
     WHERE i.stock IS NOT NULL
     ORDER BY i.sku LIMIT 1;
    IF FOUND THEN
        PERFORM sk_invalid('hold_id', format(
            'required: product %s grants the limited item %s, bought through a hold',
            p_product_id, v_sku));
    END IF;
END $$;

-- Credits the store transaction p_transaction_id (of p_store, for the store's product
-- p_store_product_id) to p_player, exactly once per idempotency key and once per transaction:
--   0. the key: a stored outcome is replayed;
--  0a. account_frozen (403, not stored): the player is frozen (sk_risk_admit, as a purchase's;
--      store/receipts.py asks the same before the store is: a frozen player's proof is left
--      unconfirmed there, and this one catches a freeze that came in between);
--   1. not_found: the game has no published catalog;
--   2. receipt_invalid (unknown_product): no product of the live catalog has this store id;
--  2a. with p_hold_id: not_found / validation_failed (hold_id) from sk_receipt_hold;
--      without one: validation_failed (hold_id) for a product granting a limited item
--      (sk_receipt_without_hold, checked with the product before the store is asked);
--   3. receipt_already_used: the transaction was credited before, to another player or under
--      another key (the same player under the same key gets the first outcome again);
--  3a. with p_hold_id: hold_expired when the hold has expired, was released or was used
--      (sk_consume_hold, under the hold's lock);
--   4. purchase_limit_reached: the product grants a durable the player owns;
--   5. balance_cap_exceeded: a granted currency would pass its max_balance.
-- The grant is items (sku order), then currencies (code order), each with ledger kind
-- `topup`; in a currency the player owes (player_debts) the top-up repays the debt first
-- (ledger kind `chargeback`, reference `repay:<receipt>`).
--
-- With p_hold_id the receipt is the purchase of the held units: the hold is consumed by
-- 'receipt:<id>' and the product's grant of the held item is those units (no stock is taken
-- again); they count against the item's per-player limit as bought units do (the player's
-- count row, as a purchase keeps it), and the sale may have sold the item out
-- (sk_check_sold_out, last, as a purchase's). Lock order as a purchase's (31_holds.sql):
-- wallets, the count row, the hold, inventory rows, the sold-out line.
CREATE OR REPLACE FUNCTION sk_redeem_receipt(
    p_game text, p_player text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer, p_request_id text,
    p_store text, p_transaction_id text, p_store_product_id text, p_hold_id uuid DEFAULT NULL,
    OUT status integer, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_live record;
    v_product catalog_products;
    v_hold holds;
    v_item catalog_items;
    v_receipt receipts;
    v_id uuid := gen_random_uuid();
    v_reference text;
    v_granted jsonb := '[]';
    v_repaid jsonb := '[]';
    g record;
    v_kind text;
    v_debt bigint;
    v_balance bigint;
    v_repay bigint;
    v_code text;
    v_message text;
    v_details text;
    v_start record;
BEGIN
    v_start := sk_operation_start(p_game, p_player, p_player, p_key, p_fingerprint,  -- 0, 0a
                                  p_ttl_seconds, p_wait_ms, 'receipt', p_request_id);
    status := v_start.status;
    body := v_start.body;
    replayed := v_start.replayed;
    IF status IS NOT NULL THEN
        RETURN;
    END IF;
    BEGIN
        v_live := sk_live_version(p_game);                                                 -- 1
        SELECT * INTO v_product FROM catalog_products
         WHERE version_id = v_live.version_id AND store = p_store
           AND store_product_id = p_store_product_id;
        IF NOT FOUND THEN                                                                 -- 2
            PERFORM sk_reject_receipt('receipt_invalid', 'unknown_product',
                format('no product of the live catalog is %s on %s', p_store_product_id,
                       p_store));
        END IF;
        IF p_hold_id IS NOT NULL THEN                                                     -- 2a
            v_hold := sk_receipt_hold(p_game, p_player, p_hold_id, v_product.product_id,
                                      v_product.grants);
        END IF;
        -- The unique key claims the transaction: a concurrent twin under another key waits
        -- here for this transaction, then finds the row.
        INSERT INTO receipts (game_id, player_id, id, store, transaction_id, store_product_id,
                              product_id, catalog_version, granted, status, idempotency_key)
        VALUES (p_game, p_player, v_id, p_store, p_transaction_id, p_store_product_id,
                v_product.product_id, v_live.version, '[]', 'credited', p_key)
        ON CONFLICT (game_id, store, transaction_id) DO NOTHING
        RETURNING * INTO v_receipt;
        IF v_receipt.id IS NULL THEN                                                      -- 3
            SELECT * INTO v_receipt FROM receipts
             WHERE game_id = p_game AND store = p_store AND transaction_id = p_transaction_id;
            IF v_receipt.player_id = p_player AND v_receipt.idempotency_key = p_key
               AND v_receipt.outcome IS NOT NULL THEN
                -- The key's own record has expired since: the receipt still remembers it.
                status := 201;
                body := v_receipt.outcome;
                replayed := true;
                PERFORM sk_idempotency_finish(p_game, p_player, p_key, p_fingerprint,
                                              p_ttl_seconds, status, body);
                RETURN;
            END IF;
            PERFORM sk_fail('receipt_already_used',
                'this store transaction was already redeemed',
                jsonb_build_object('store', p_store, 'transaction_id', p_transaction_id));
        END IF;

        v_reference := 'receipt:' || v_id;
        PERFORM sk_lock_wallets(p_game, p_player,
            ARRAY(SELECT e->>'currency' FROM jsonb_array_elements(v_product.grants) e
                   WHERE e ? 'currency'));
        IF p_hold_id IS NOT NULL THEN                                                     -- 3a
            SELECT * INTO v_item FROM catalog_items
             WHERE version_id = v_live.version_id AND sku = v_hold.sku;
            -- The held units become bought ones: the slot of the per-player limit the hold
            -- kept stays taken once the hold has ended.
            IF v_item.per_player_limit IS NOT NULL OR v_item.kind = 'durable' THEN
                INSERT INTO player_item_counts AS c (game_id, player_id, sku, purchased)
                VALUES (p_game, p_player, v_hold.sku, v_hold.quantity)
                ON CONFLICT (game_id, player_id, sku)
                DO UPDATE SET purchased = c.purchased + EXCLUDED.purchased;
            END IF;
            v_hold := sk_consume_hold(p_game, p_player, p_hold_id, v_hold.sku, v_hold.quantity,
                                      v_reference);
        END IF;
        FOR g IN SELECT e->>'sku' AS sku, (e->>'quantity')::bigint AS quantity
                   FROM jsonb_array_elements(v_product.grants) e WHERE e ? 'sku' ORDER BY 1 LOOP
            SELECT kind INTO v_kind FROM catalog_items
             WHERE version_id = v_live.version_id AND sku = g.sku;
            IF v_kind = 'durable'                                                         -- 4
               AND (g.quantity > 1 OR sk_owned(p_game, p_player, g.sku) > 0) THEN
                PERFORM sk_fail('purchase_limit_reached',
                    format('%s is durable and already owned', g.sku),
                    jsonb_build_object('sku', g.sku, 'limit', 1));
            END IF;
            PERFORM sk_inventory_change(p_game, p_player, g.sku, g.quantity, 'topup',
                                        v_reference);
            v_granted := v_granted || jsonb_build_object('sku', g.sku, 'quantity', g.quantity);
        END LOOP;
        FOR g IN SELECT e->>'currency' AS currency, (e->>'amount')::bigint AS amount,
                        cc.max_balance
                   FROM jsonb_array_elements(v_product.grants) e
                   JOIN catalog_currencies cc
                     ON cc.version_id = v_live.version_id AND cc.code = e->>'currency'
                  ORDER BY 1 LOOP
            v_balance := sk_wallet_change(p_game, p_player, g.currency, g.amount,        -- 5
                                          g.max_balance, 'topup', v_reference);
            v_granted := v_granted
                || jsonb_build_object('currency', g.currency, 'amount', g.amount);
            SELECT amount INTO v_debt FROM player_debts
             WHERE game_id = p_game AND player_id = p_player AND currency = g.currency
               FOR UPDATE;
            v_repay := least(coalesce(v_debt, 0), v_balance);
            IF v_repay > 0 THEN
                PERFORM sk_wallet_change(p_game, p_player, g.currency, -v_repay, NULL,
                                         'chargeback', 'repay:' || v_id);
                UPDATE player_debts SET amount = amount - v_repay
                 WHERE game_id = p_game AND player_id = p_player AND currency = g.currency;
                v_repaid := v_repaid
                    || jsonb_build_object('currency', g.currency, 'amount', v_repay);
            END IF;
        END LOOP;

        status := 201;
        body := jsonb_build_object(
            'receipt', sk_receipt_json(v_receipt) || jsonb_build_object('granted', v_granted),
            'balances', sk_balances_json(p_game, p_player, v_live.version_id),
            'granted', v_granted,
            'repaid', v_repaid,
            'debts', sk_debts_json(p_game, p_player))::text;
        UPDATE receipts SET granted = v_granted, outcome = body
         WHERE game_id = p_game AND player_id = p_player AND id = v_id;
        -- receipt.redeemed: the answer (less the balances, which are the player's, not the
        -- receipt's) and the ledger rows of the top-up and of the debt it repaid.
        PERFORM sk_emit_event(p_game, 'receipt.redeemed', p_player,
            ((body::jsonb) - 'balances')
            || sk_event_ledgers(p_game, p_player,
                   ARRAY[v_reference, 'repay:' || v_id],
                   2 * sk_granted_rows(v_granted, 'currency'),
                   sk_granted_rows(v_granted, 'sku')));
        IF p_hold_id IS NOT NULL THEN
            -- The hold's units were maybe the item's last ones out (after the sale's event,
            -- as a purchase's).
            PERFORM sk_check_sold_out(p_game, v_hold.sku, p_player);
        END IF;
    EXCEPTION WHEN SQLSTATE 'SKB01' THEN
        GET STACKED DIAGNOSTICS v_code = MESSAGE_TEXT, v_message = PG_EXCEPTION_HINT,
                                v_details = PG_EXCEPTION_DETAIL;
        status := 409;
        body := sk_error_body(v_code, v_message, v_details, p_request_id);
    END;
    PERFORM sk_idempotency_finish(p_game, p_player, p_key, p_fingerprint, p_ttl_seconds,
                                  status, body);
END $$;

-- A store refunded or charged back the transaction p_transaction_id: what its receipt granted
-- is taken back, as far as the player still has it (items in sku order, then currencies in
-- code order, ledger kind `chargeback`); the currency it could not take back becomes debt that
-- blocks purchases until a top-up repays it. Under the policy `freeze` the caller
-- (store/chargebacks.py) also freezes the player, in the same transaction. Once per receipt: a second report of the same
-- transaction changes nothing. Returns the chargeback made, or NULL when there is nothing to
-- take back (a transaction this game never credited, or one taken back before).
CREATE OR REPLACE FUNCTION sk_chargeback(
    p_game text, p_store text, p_transaction_id text, p_source text, p_reason text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_receipt receipts;
    v_policy text;
    v_reference text;
    v_taken jsonb := '[]';
    v_owed jsonb := '[]';
    g record;
    v_take bigint;
    v_row chargebacks;
BEGIN
    SELECT * INTO v_receipt FROM receipts
     WHERE game_id = p_game AND store = p_store AND transaction_id = p_transaction_id
       FOR UPDATE;
    IF NOT FOUND OR v_receipt.status = 'charged_back' THEN
        RETURN NULL;
    END IF;
    SELECT coalesce((SELECT chargeback_policy FROM store_accounts
                      WHERE game_id = p_game AND store = p_store), 'debt') INTO v_policy;
    v_reference := 'chargeback:' || v_receipt.id;
    PERFORM sk_lock_wallets(p_game, v_receipt.player_id,
        ARRAY(SELECT e->>'currency' FROM jsonb_array_elements(v_receipt.granted) e
               WHERE e ? 'currency'));
    FOR g IN SELECT e->>'sku' AS sku, (e->>'quantity')::bigint AS quantity
               FROM jsonb_array_elements(v_receipt.granted) e WHERE e ? 'sku' ORDER BY 1 LOOP
        v_take := least(g.quantity, sk_owned(p_game, v_receipt.player_id, g.sku));
        IF v_take > 0 THEN
            PERFORM sk_inventory_change(p_game, v_receipt.player_id, g.sku, -v_take,
                                        'chargeback', v_reference);
            v_taken := v_taken || jsonb_build_object('sku', g.sku, 'quantity', v_take);
        END IF;
        IF v_take < g.quantity THEN
            v_owed := v_owed || jsonb_build_object('sku', g.sku, 'quantity', g.quantity - v_take);
        END IF;
    END LOOP;
    FOR g IN SELECT e->>'currency' AS currency, (e->>'amount')::bigint AS amount
               FROM jsonb_array_elements(v_receipt.granted) e WHERE e ? 'currency'
              ORDER BY 1 LOOP
        v_take := least(g.amount, sk_balance(p_game, v_receipt.player_id, g.currency));
        IF v_take > 0 THEN
            PERFORM sk_wallet_change(p_game, v_receipt.player_id, g.currency, -v_take, NULL,
                                     'chargeback', v_reference);
            v_taken := v_taken || jsonb_build_object('currency', g.currency, 'amount', v_take);
        END IF;
        IF v_take < g.amount THEN
            v_owed := v_owed
                || jsonb_build_object('currency', g.currency, 'amount', g.amount - v_take);
            INSERT INTO player_debts AS d (game_id, player_id, currency, amount)
            VALUES (p_game, v_receipt.player_id, g.currency, g.amount - v_take)
            ON CONFLICT (game_id, player_id, currency)
            DO UPDATE SET amount = d.amount + EXCLUDED.amount;
        END IF;
    END LOOP;
    INSERT INTO chargebacks (game_id, player_id, receipt_id, source, reason, policy, taken, owed)
    VALUES (p_game, v_receipt.player_id, v_receipt.id, p_source, p_reason, v_policy, v_taken,
            v_owed)
    RETURNING * INTO v_row;
    UPDATE receipts SET status = 'charged_back', charged_back_at = now()
     WHERE game_id = p_game AND player_id = v_receipt.player_id AND id = v_receipt.id
    RETURNING * INTO v_receipt;
    -- receipt.charged_back: the chargeback, the receipt as it stands now, what the player
    -- still owes, and the ledger rows it wrote.
    PERFORM sk_emit_event(p_game, 'receipt.charged_back', v_receipt.player_id,
        jsonb_build_object(
            'chargeback', sk_chargeback_json(v_row, v_receipt),
            'receipt', sk_receipt_json(v_receipt),
            'debts', sk_debts_json(p_game, v_receipt.player_id))
        || sk_event_ledgers(p_game, v_receipt.player_id, ARRAY[v_reference],
               sk_granted_rows(v_taken, 'currency'), sk_granted_rows(v_taken, 'sku')));
    RETURN to_jsonb(v_row);
END $$;
