-- A player as the store knows it: one player_profiles row (migration 0014) with when it was
-- first seen (the age trust tiers and segment rules both go by), its country and the studio's
-- attributes (66_offers.sql), the tier the service set and a freeze (65_risk.sql).

-- The player is seen: the one function that makes its row. Each operation calls it once: the
-- money operations through sk_risk_admit (only when the row is missing: it has just looked),
-- a code redemption, a catalog view that offers price, an attributes write, a freeze or a tier
-- change. A player from before the row existed counts from its first ledger or inventory
-- entry, so adding tiers or a `first_seen` segment later does not make every old player new.
--
-- A country (from the player's token) is kept when it differs. Without one, a known player is
-- only looked at: no row lock, so a purchase never waits here.
CREATE OR REPLACE FUNCTION sk_player_seen(p_game text, p_player text, p_country text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_country text;
BEGIN
    SELECT pp.country INTO v_country FROM player_profiles pp
     WHERE pp.game_id = p_game AND pp.player_id = p_player;
    IF FOUND THEN
        IF p_country IS NOT NULL AND v_country IS DISTINCT FROM p_country THEN
            UPDATE player_profiles SET country = p_country, updated_at = now()
             WHERE game_id = p_game AND player_id = p_player;
        END IF;
        RETURN;
    END IF;
    INSERT INTO player_profiles AS pp (game_id, player_id, first_seen, country)
    SELECT p_game, p_player, least(
        now(),
        (SELECT created_at FROM ledger_entries
          WHERE game_id = p_game AND player_id = p_player ORDER BY id LIMIT 1),
        (SELECT created_at FROM item_ledger
          WHERE game_id = p_game AND player_id = p_player ORDER BY id LIMIT 1)),
        p_country
    -- Made meanwhile by a concurrent first request: keep its first_seen, set the country.
    ON CONFLICT (game_id, player_id) DO UPDATE SET country = EXCLUDED.country, updated_at = now()
     WHERE EXCLUDED.country IS NOT NULL AND pp.country IS DISTINCT FROM EXCLUDED.country;
END $$;
