-- Shopkeep schema. Player-scoped tables lead their primary key with (game_id, player_id) so they
-- can be distributed on player_id (Citus); catalog tables are small reference tables.

CREATE TABLE games (
    id               text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name             text NOT NULL,
    live_version_id  bigint,
    draft            jsonb NOT NULL DEFAULT '{"currencies": [], "items": []}',
    draft_revision   bigint NOT NULL DEFAULT 1,
    draft_updated_at timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Signing keys, per game. kid is global so a token's header finds its key in one lookup;
-- JWKS keys have no kid of ours (the identity provider names its own keys).
CREATE TABLE game_keys (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    game_id    text NOT NULL REFERENCES games (id),
    kid        text UNIQUE CHECK (kid ~ '^[A-Za-z0-9_.-]{1,128}$'),
    algorithm  text NOT NULL CHECK (algorithm IN ('HS256', 'RS256', 'ES256', 'EdDSA')),
    secret     text CHECK (secret IS NULL OR octet_length(secret) >= 32),
    public_key text,
    jwks_url   text,
    issuer     text NOT NULL,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(secret, public_key, jwks_url) = 1),
    CHECK ((algorithm = 'HS256') = (secret IS NOT NULL)),
    CHECK ((jwks_url IS NULL) = (kid IS NOT NULL))
);
CREATE INDEX game_keys_game ON game_keys (game_id);

CREATE TABLE catalog_versions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    game_id      text NOT NULL REFERENCES games (id),
    version      integer NOT NULL CHECK (version >= 1),
    content      jsonb NOT NULL,
    notes        text NOT NULL DEFAULT '',
    published_by text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (game_id, version)
);
ALTER TABLE games ADD FOREIGN KEY (live_version_id) REFERENCES catalog_versions (id);

-- The published content again, as rows, so the purchase function reads one item by key.
CREATE TABLE catalog_currencies (
    version_id  bigint NOT NULL REFERENCES catalog_versions (id),
    code        text NOT NULL,
    scale       smallint NOT NULL CHECK (scale BETWEEN 0 AND 9),
    max_balance bigint CHECK (max_balance BETWEEN 1 AND 9007199254740991),
    PRIMARY KEY (version_id, code)
);

CREATE TABLE catalog_items (
    version_id       bigint NOT NULL REFERENCES catalog_versions (id),
    sku              text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('consumable', 'durable', 'bundle')),
    prices           jsonb NOT NULL,
    contents         jsonb NOT NULL DEFAULT '[]',
    stock            bigint CHECK (stock >= 0),
    per_player_limit bigint CHECK (per_player_limit >= 1),
    available_from   timestamptz,
    available_until  timestamptz,
    PRIMARY KEY (version_id, sku)
);

-- Live stock of limited items, spread over buckets so a drop does not queue on one hot row.
CREATE TABLE stock_levels (
    game_id    text NOT NULL REFERENCES games (id),
    sku        text NOT NULL,
    initial    bigint NOT NULL CHECK (initial >= 0),
    buckets    integer NOT NULL CHECK (buckets >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, sku)
);

CREATE TABLE stock_buckets (
    game_id   text NOT NULL,
    sku       text NOT NULL,
    bucket    integer NOT NULL,
    remaining bigint NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (game_id, sku, bucket),
    FOREIGN KEY (game_id, sku) REFERENCES stock_levels (game_id, sku)
);

CREATE TABLE stock_restocks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    game_id    text NOT NULL,
    sku        text NOT NULL,
    added      bigint NOT NULL CHECK (added >= 1),
    added_by   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (game_id, sku) REFERENCES stock_levels (game_id, sku)
);

CREATE TABLE wallets (
    game_id   text NOT NULL REFERENCES games (id),
    player_id text NOT NULL,
    currency  text NOT NULL,
    balance   bigint NOT NULL DEFAULT 0 CHECK (balance >= 0 AND balance <= 9007199254740991),
    -- The currency's max_balance when this wallet was last credited: a cap lowered later
    -- blocks further credits but never a debit.
    cap       bigint CHECK (cap IS NULL OR balance <= cap),
    PRIMARY KEY (game_id, player_id, currency)
);

CREATE TABLE ledger_entries (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    game_id       text NOT NULL,
    player_id     text NOT NULL,
    currency      text NOT NULL,
    delta         bigint NOT NULL CHECK (delta <> 0),
    balance_after bigint NOT NULL CHECK (balance_after >= 0),
    kind          text NOT NULL CHECK (kind IN ('purchase', 'grant', 'refund', 'adjust')),
    reference     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, player_id, id),
    FOREIGN KEY (game_id, player_id, currency) REFERENCES wallets (game_id, player_id, currency)
);

CREATE TABLE inventories (
    game_id   text NOT NULL REFERENCES games (id),
    player_id text NOT NULL,
    sku       text NOT NULL,
    quantity  bigint NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (game_id, player_id, sku)
);

-- Inventory's own append-only journal, so support and the audit can explain every unit.
CREATE TABLE item_ledger (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    game_id        text NOT NULL,
    player_id      text NOT NULL,
    sku            text NOT NULL,
    delta          bigint NOT NULL CHECK (delta <> 0),
    quantity_after bigint NOT NULL CHECK (quantity_after >= 0),
    kind           text NOT NULL CHECK (kind IN ('purchase', 'grant', 'refund', 'consume')),
    reference      text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, player_id, id)
);

CREATE TABLE purchases (
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    id              uuid NOT NULL,
    game_id         text NOT NULL REFERENCES games (id),
    player_id       text NOT NULL,
    sku             text NOT NULL,
    quantity        integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    currency        text NOT NULL,
    unit_price      bigint NOT NULL CHECK (unit_price >= 0),
    total_price     bigint NOT NULL CHECK (total_price >= 0),
    catalog_version integer NOT NULL,
    status          text NOT NULL CHECK (status IN ('completed', 'refunded')),
    granted         jsonb NOT NULL,
    idempotency_key text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    refunded_at     timestamptz,
    refund_reason   text,
    PRIMARY KEY (game_id, player_id, seq),
    CHECK (total_price = unit_price * quantity),
    CHECK ((status = 'refunded') = (refunded_at IS NOT NULL))
);
CREATE INDEX purchases_by_id ON purchases (game_id, id);
CREATE INDEX purchases_by_sku ON purchases (game_id, sku);

-- Units of an item each player has bought, for per-player limits; its row is also the lock
-- that serializes one player's purchases of one sku.
CREATE TABLE player_item_counts (
    game_id   text NOT NULL,
    player_id text NOT NULL,
    sku       text NOT NULL,
    purchased bigint NOT NULL CHECK (purchased >= 0),
    PRIMARY KEY (game_id, player_id, sku)
);

CREATE TABLE grants (
    id         uuid NOT NULL,
    game_id    text NOT NULL REFERENCES games (id),
    player_id  text NOT NULL,
    currency   text,
    amount     bigint CHECK (amount >= 1),
    sku        text,
    quantity   bigint CHECK (quantity >= 1),
    reason     text NOT NULL,
    granted_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, player_id, id),
    CHECK ((currency IS NULL) = (amount IS NULL) AND (sku IS NULL) = (quantity IS NULL)
           AND (currency IS NULL) <> (sku IS NULL))
);

-- Stored outcomes of state-changing requests. status and response_body are written in the
-- same transaction as the effects, so a committed row always holds a final outcome.
CREATE TABLE idempotency_keys (
    game_id       text NOT NULL,
    subject       text NOT NULL,
    key           text NOT NULL,
    fingerprint   text NOT NULL,
    status        smallint,
    response_body text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (game_id, subject, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Append-only tables: the database itself refuses UPDATE, DELETE and TRUNCATE.
CREATE FUNCTION sk_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ledger_entries', 'item_ledger', 'catalog_versions',
                             'catalog_items', 'catalog_currencies', 'stock_restocks'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION sk_refuse_change()', t || '_append_only', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION sk_refuse_change()', t || '_no_truncate', t);
    END LOOP;
END $$;
