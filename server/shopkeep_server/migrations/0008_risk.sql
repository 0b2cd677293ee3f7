-- Fraud and abuse controls (docs/api.md, "Risk"): the policy is part of each catalog version,
-- what it counts is read from the ledger and the purchases, and what it decides is kept here.

-- The policy of each published version, as the SQL reads it: the catalog document's `risk`
-- object (NULL: no limits). Generated, so publishing stays one INSERT and a version's policy
-- can never differ from its content; kept in its own column, so a purchase reads the policy
-- without detoasting a catalog of thousands of items.
ALTER TABLE catalog_versions
    ADD COLUMN risk jsonb GENERATED ALWAYS AS (nullif(content -> 'risk', 'null')) STORED;

-- A catalog as the store keeps it now always has `risk` (null: no policy): the drafts too.
ALTER TABLE games ALTER COLUMN draft SET DEFAULT '{"currencies": [], "items": [], "risk": null}';
UPDATE games SET draft = draft || '{"risk": null}' WHERE NOT draft ? 'risk';

-- One row per player the money path has seen: when it was first seen (the age trust tiers
-- go by), the tier the service set (NULL: placed by age and history) and a freeze.
CREATE TABLE player_risk (
    game_id       text NOT NULL,
    player_id     text NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    tier          text,
    tier_reason   text,
    tier_set_by   text,
    tier_set_at   timestamptz,
    frozen_at     timestamptz,
    frozen_by     text,
    frozen_reason text,
    PRIMARY KEY (game_id, player_id),
    CHECK ((frozen_at IS NULL) = (frozen_by IS NULL) AND (frozen_at IS NULL) = (frozen_reason IS NULL))
);

-- Every decision about a player: a refusal (limit_exceeded, account_frozen), a freeze, an
-- unfreeze, a tier change. Append-only, like the ledger.
CREATE TABLE risk_events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    game_id    text NOT NULL,
    player_id  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('refused', 'frozen', 'unfrozen', 'tier_changed')),
    operation  text CHECK (operation IN ('purchase', 'grant', 'refund', 'consume')),
    code       text,
    rule       text,
    details    jsonb NOT NULL DEFAULT '{}',
    author     text,
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, player_id, id),
    CHECK ((kind = 'refused') = (code IS NOT NULL AND operation IS NOT NULL))
);

-- The mint circuit breaker of each currency of a game: tripped by a grant that would mint
-- past the policy's threshold, reset only by a studio member. The row is also the lock that
-- serializes the grants of a currency with a breaker, so the threshold is exact.
CREATE TABLE risk_breakers (
    game_id    text NOT NULL REFERENCES games (id),
    currency   text NOT NULL,
    tripped_at timestamptz,
    reset_at   timestamptz,
    reset_by   text,
    PRIMARY KEY (game_id, currency)
);

-- Every trip and reset of a breaker: a trip's details name the grant's player and the sums,
-- a reset has its studio member and reason. Append-only.
CREATE TABLE risk_breaker_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    game_id    text NOT NULL REFERENCES games (id),
    currency   text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('tripped', 'reset')),
    author     text,
    reason     text,
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX risk_breaker_log_game ON risk_breaker_log (game_id, currency, id);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['risk_events', 'risk_breaker_log'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION sk_refuse_change()', t || '_append_only', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION sk_refuse_change()', t || '_no_truncate', t);
    END LOOP;
END $$;

-- The rolling windows are sums over these ranges (sql/65_risk.sql): one index range per limit,
-- read with the player's wallet locked.
CREATE INDEX purchases_spend_window
    ON purchases (game_id, player_id, currency, created_at) INCLUDE (total_price);
CREATE INDEX purchases_refund_window
    ON purchases (game_id, player_id, refunded_at) WHERE refunded_at IS NOT NULL;
CREATE INDEX ledger_earn_window
    ON ledger_entries (game_id, player_id, currency, created_at) INCLUDE (delta)
    WHERE kind = 'grant';
CREATE INDEX ledger_mint_window
    ON ledger_entries (game_id, currency, created_at) INCLUDE (delta) WHERE kind = 'grant';
