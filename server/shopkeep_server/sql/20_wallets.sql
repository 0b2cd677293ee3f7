-- Wallets: locked in currency order, changed only with a ledger row.

-- Locks a player's wallets for these currencies, creating missing ones, always in currency
-- order so two transactions of one player never wait on each other in a cycle.
CREATE OR REPLACE FUNCTION sk_lock_wallets(p_game text, p_player text, p_currencies text[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO wallets (game_id, player_id, currency)
    SELECT p_game, p_player, c FROM unnest(p_currencies) AS c ORDER BY c
    ON CONFLICT DO NOTHING;
    SELECT 1 FROM wallets
     WHERE game_id = p_game AND player_id = p_player AND currency = ANY (p_currencies)
     ORDER BY currency FOR UPDATE;
$$;

CREATE OR REPLACE FUNCTION sk_balance(p_game text, p_player text, p_currency text)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT balance FROM wallets
                      WHERE game_id = p_game AND player_id = p_player AND currency = p_currency), 0)
$$;

-- Applies one signed change (never 0) to a locked wallet and writes its ledger row, which it
-- returns: an operation's event carries the row from here rather than reading it back. A
-- credit records the currency's cap (p_cap) on the wallet; a debit is never blocked by a cap.
CREATE OR REPLACE FUNCTION sk_wallet_write(
    p_game text, p_player text, p_currency text, p_delta bigint, p_cap bigint,
    p_kind text, p_reference text
) RETURNS ledger_entries LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
    v_before bigint;
    v_entry ledger_entries;
BEGIN
    UPDATE wallets
       SET balance = balance + p_delta,
           cap = CASE WHEN p_delta > 0 THEN p_cap ELSE cap END
     WHERE game_id = p_game AND player_id = p_player AND currency = p_currency
       AND balance + p_delta >= 0
       AND balance + p_delta <= coalesce(CASE WHEN p_delta > 0 THEN p_cap ELSE cap END,
                                         9007199254740991)
       AND balance + p_delta <= 9007199254740991
    RETURNING balance INTO v_balance;
    IF NOT FOUND THEN
        v_before := sk_balance(p_game, p_player, p_currency);
        IF p_delta < 0 THEN
            PERFORM sk_fail('insufficient_funds', format('not enough %s', p_currency),
                jsonb_build_object('currency', p_currency, 'balance', v_before,
                                   'required', -p_delta));
        END IF;
        PERFORM sk_fail('balance_cap_exceeded',
            format('%s would exceed its maximum balance', p_currency),
            jsonb_build_object('currency', p_currency, 'balance', v_before, 'amount', p_delta,
                               'max_balance', coalesce(p_cap, 9007199254740991)));
    END IF;
    INSERT INTO ledger_entries (game_id, player_id, currency, delta, balance_after, kind, reference)
    VALUES (p_game, p_player, p_currency, p_delta, v_balance, p_kind, p_reference)
    RETURNING * INTO v_entry;
    RETURN v_entry;
END $$;

-- sk_wallet_write for callers that want the balance after it (a change of 0 writes nothing).
CREATE OR REPLACE FUNCTION sk_wallet_change(
    p_game text, p_player text, p_currency text, p_delta bigint, p_cap bigint,
    p_kind text, p_reference text
) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF p_delta = 0 THEN
        RETURN sk_balance(p_game, p_player, p_currency);
    END IF;
    RETURN (sk_wallet_write(p_game, p_player, p_currency, p_delta, p_cap, p_kind,
                            p_reference)).balance_after;
END $$;
