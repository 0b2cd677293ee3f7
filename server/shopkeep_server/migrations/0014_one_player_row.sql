-- One row per player: player_risk (migration 0008: first seen, the service's tier, a freeze)
-- and player_profiles (migration 0011: first seen, country, the studio's attributes) both said
-- when the store first saw a player, each purchase wrote both, and trust tiers and segments
-- could disagree on how old a player is. player_profiles keeps the player (it already has the
-- game's foreign key and the columns the studio writes) and takes over player_risk's columns;
-- sql/22_players.sql's sk_player_seen is the one function that makes the row.

ALTER TABLE player_profiles
    ADD COLUMN tier          text,
    ADD COLUMN tier_reason   text,
    ADD COLUMN tier_set_by   text,
    ADD COLUMN tier_set_at   timestamptz,
    ADD COLUMN frozen_at     timestamptz,
    ADD COLUMN frozen_by     text,
    ADD COLUMN frozen_reason text,
    ADD CONSTRAINT player_profiles_freeze_check
        CHECK ((frozen_at IS NULL) = (frozen_by IS NULL)
               AND (frozen_at IS NULL) = (frozen_reason IS NULL));

-- The risk state moves over as it was. A player in both tables was first seen at the earlier
-- of the two; one only in player_risk gets a profile row made then (updated_at too: nothing of
-- its profile has changed since). A player_risk row of a game that does not exist stops the
-- migration on the foreign key rather than being dropped.
INSERT INTO player_profiles AS pp (
    game_id, player_id, first_seen, updated_at, tier, tier_reason, tier_set_by, tier_set_at,
    frozen_at, frozen_by, frozen_reason)
SELECT game_id, player_id, first_seen_at, first_seen_at, tier, tier_reason, tier_set_by,
       tier_set_at, frozen_at, frozen_by, frozen_reason
  FROM player_risk
ON CONFLICT (game_id, player_id) DO UPDATE SET
    first_seen    = least(pp.first_seen, EXCLUDED.first_seen),
    tier          = EXCLUDED.tier,
    tier_reason   = EXCLUDED.tier_reason,
    tier_set_by   = EXCLUDED.tier_set_by,
    tier_set_at   = EXCLUDED.tier_set_at,
    frozen_at     = EXCLUDED.frozen_at,
    frozen_by     = EXCLUDED.frozen_by,
    frozen_reason = EXCLUDED.frozen_reason;

DROP TABLE player_risk;

-- A frozen player's code redemptions and holds are refused too (sk_risk_admit in
-- 66_offers.sql and 31_holds.sql), and recorded as the refusals of those operations.
ALTER TABLE risk_events DROP CONSTRAINT risk_events_operation_check,
    ADD CONSTRAINT risk_events_operation_check
        CHECK (operation IN ('purchase', 'grant', 'refund', 'consume', 'redeem', 'hold'));
