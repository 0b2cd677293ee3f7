-- Holds: units of a limited item set aside for one player for a few minutes, while the player
-- pays (at an app store, say); a purchase or a receipt naming the hold then takes exactly those
-- units (sql/31_holds.sql).
--
-- A hold's units leave stock_buckets when it is placed, so `remaining` there counts the units
-- that are neither sold nor held, and the bucket algorithm that guards a drop guards holds too.
-- While status is 'active' the units are the hold's, expired or not: an active hold past
-- expires_at is no longer usable and its units count as available again (sk_stock_remaining),
-- and the next buyer who needs them puts them back into the buckets (status 'expired'); no job
-- is needed for that. A released hold gives its units back at once ('released'); a consumed one
-- ('consumed') is a sale, and consumed_by names what consumed it ('purchase:<id>', ...).
--
-- Player-scoped like purchases: (game_id, player_id) lead the key, so it can be distributed on
-- player_id (docs/scaling.md).
CREATE TABLE holds (
    game_id     text NOT NULL REFERENCES games (id),
    player_id   text NOT NULL,
    id          uuid NOT NULL,
    sku         text NOT NULL,
    quantity    bigint NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'consumed', 'released', 'expired')),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    consumed_by text,
    PRIMARY KEY (game_id, player_id, id),
    FOREIGN KEY (game_id, sku) REFERENCES stock_levels (game_id, sku),
    CHECK (expires_at > created_at),
    CHECK ((status = 'active') = (ended_at IS NULL)),
    CHECK ((status = 'consumed') = (consumed_by IS NOT NULL))
);

-- The active holds of an item by expiry: what availability and the reclaiming of expired
-- holds read on the money path.
CREATE INDEX holds_active ON holds (game_id, sku, expires_at) WHERE status = 'active';
-- Ended holds by age, for the janitor's tidying.
CREATE INDEX holds_ended ON holds (ended_at) WHERE status IN ('released', 'expired');
