-- Personalized offers (issue 15): what the store knows of a player, the offers and promo codes
-- of each published version as rows (as catalog_items holds its items), the live state of
-- promo codes (budgets, redemptions) and of per-player offer limits, and the offer a purchase
-- was priced by. The functions that use them are sql/66_offers.sql.

-- A player as the store knows it: when it was first seen, its country (a token's `country`
-- claim or the service's PUT /v1/players/{id}/attributes) and the studio's key-values.
-- Lifetime spend and the last purchase are derived from purchases, never stored twice.
CREATE TABLE player_profiles (
    game_id    text NOT NULL REFERENCES games (id),
    player_id  text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    country    text CHECK (country ~ '^[A-Z]{2}$'),
    attributes jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, player_id)
);

-- A version's offers, with their segment's rule compiled (store/segments.py) and inlined:
-- rule NULL is everyone. currency NULL (a percentage) applies to each of the item's prices.
CREATE TABLE catalog_offers (
    version_id       bigint NOT NULL REFERENCES catalog_versions (id),
    sku              text NOT NULL,
    offer_id         text NOT NULL,
    rule             jsonb,
    currency         text,
    price            bigint CHECK (price >= 0),
    discount_percent integer CHECK (discount_percent BETWEEN 1 AND 100),
    discount_amount  bigint CHECK (discount_amount >= 1),
    starts_at        timestamptz,
    ends_at          timestamptz,
    per_player_limit bigint CHECK (per_player_limit >= 1),
    requires_code    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (version_id, sku, offer_id),
    CHECK (num_nonnulls(price, discount_percent, discount_amount) = 1),
    CHECK ((currency IS NULL) = (discount_percent IS NOT NULL))
);

CREATE TABLE catalog_promo_codes (
    version_id     bigint NOT NULL REFERENCES catalog_versions (id),
    code           text NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{3,31}$'),
    rule           jsonb,
    offer_id       text,
    grant_contents jsonb NOT NULL DEFAULT '[]',
    budget         bigint NOT NULL CHECK (budget >= 1),
    starts_at      timestamptz,
    ends_at        timestamptz,
    PRIMARY KEY (version_id, code)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['catalog_offers', 'catalog_promo_codes'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION sk_refuse_change()', t || '_append_only', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION sk_refuse_change()', t || '_no_truncate', t);
    END LOOP;
END $$;

-- Live state of a code, like stock: made when the code is first published; a later version
-- sets the budget, never the count. Its row is the lock that counts redemptions exactly.
CREATE TABLE promo_code_budgets (
    game_id  text NOT NULL REFERENCES games (id),
    code     text NOT NULL,
    budget   bigint NOT NULL CHECK (budget >= 1),
    redeemed bigint NOT NULL DEFAULT 0 CHECK (redeemed >= 0),
    PRIMARY KEY (game_id, code)
);

-- One redemption per player and code; the offer it unlocked or the contents it granted.
CREATE TABLE promo_redemptions (
    game_id         text NOT NULL REFERENCES games (id),
    player_id       text NOT NULL,
    code            text NOT NULL,
    offer_id        text,
    granted         jsonb NOT NULL DEFAULT '[]',
    catalog_version integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, player_id, code)
);

-- Units bought at each offer with a per-player limit; the row is also the lock that serializes
-- one player's purchases at that offer (taken after the sku's count, before the stock).
CREATE TABLE player_offer_counts (
    game_id   text NOT NULL,
    player_id text NOT NULL,
    offer_id  text NOT NULL,
    purchased bigint NOT NULL CHECK (purchased >= 0),
    PRIMARY KEY (game_id, player_id, offer_id)
);

-- The offer a purchase was priced by (NULL: the list price); sales per offer read it.
ALTER TABLE purchases ADD COLUMN offer_id text;
CREATE INDEX purchases_by_offer ON purchases (game_id, offer_id) WHERE offer_id IS NOT NULL;
