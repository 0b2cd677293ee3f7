-- Real money in: products sold on the app stores, the stores each game sells on, receipts
-- redeemed exactly once per store transaction, and what a store's refund or chargeback takes
-- back. The money functions are sql/64_receipts.sql.

-- Two new kinds of balance change: a top-up paid at an app store, and a chargeback (what a
-- store refund takes back, and a later top-up's repayment of what it could not).
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('purchase', 'grant', 'refund', 'adjust', 'topup', 'chargeback'));
ALTER TABLE item_ledger DROP CONSTRAINT item_ledger_kind_check;
ALTER TABLE item_ledger ADD CONSTRAINT item_ledger_kind_check
    CHECK (kind IN ('purchase', 'grant', 'refund', 'consume', 'topup', 'chargeback'));

-- A published version's products, one row per store that sells each (the catalog's `products`,
-- as rows, so a receipt finds its product by the store's id in one lookup).
CREATE TABLE catalog_products (
    version_id       bigint NOT NULL REFERENCES catalog_versions (id),
    store            text NOT NULL CHECK (store IN ('app_store', 'google_play', 'steam')),
    store_product_id text NOT NULL,
    product_id       text NOT NULL,
    grants           jsonb NOT NULL,
    PRIMARY KEY (version_id, store, store_product_id)
);

-- Where and how a game sells: one row per store. `settings` may be shown to the studio;
-- `secrets` (a service-account key, a publisher key) are never sent back by any endpoint.
CREATE TABLE store_accounts (
    game_id           text NOT NULL REFERENCES games (id),
    store             text NOT NULL CHECK (store IN ('app_store', 'google_play', 'steam')),
    settings          jsonb NOT NULL,
    secrets           jsonb NOT NULL DEFAULT '{}',
    chargeback_policy text NOT NULL DEFAULT 'debt' CHECK (chargeback_policy IN ('debt', 'freeze')),
    -- Where the polled reports (Google's voided purchases, Steam's GetReport) were read up to.
    poll_cursor       text,
    updated_by        text NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, store)
);

-- One row per store transaction ever credited: the primary key is what makes a receipt count
-- once, forever, whoever sends it. Under Citus it is distributed on transaction_id (a
-- uniqueness across players needs it), not on the player.
CREATE TABLE receipts (
    game_id          text NOT NULL REFERENCES games (id),
    player_id        text NOT NULL,
    id               uuid NOT NULL,
    store            text NOT NULL CHECK (store IN ('app_store', 'google_play', 'steam')),
    transaction_id   text NOT NULL,
    store_product_id text NOT NULL,
    product_id       text NOT NULL,
    catalog_version  integer NOT NULL,
    granted          jsonb NOT NULL,
    status           text NOT NULL CHECK (status IN ('credited', 'charged_back')),
    idempotency_key  text NOT NULL,
    -- The 201 body, replayed to the same player under the same key for as long as the row
    -- lives (longer than the key's own record).
    outcome          text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    charged_back_at  timestamptz,
    PRIMARY KEY (game_id, transaction_id, store),
    CHECK ((status = 'charged_back') = (charged_back_at IS NOT NULL))
);
CREATE INDEX receipts_by_player ON receipts (game_id, player_id, id);

-- What each store refund or chargeback took back (`taken`) and what it could not (`owed`,
-- currencies become debt under the policy `debt`). Append-only.
CREATE TABLE chargebacks (
    game_id    text NOT NULL REFERENCES games (id),
    player_id  text NOT NULL,
    receipt_id uuid NOT NULL,
    source     text NOT NULL,
    reason     text NOT NULL,
    policy     text NOT NULL CHECK (policy IN ('debt', 'freeze')),
    taken      jsonb NOT NULL,
    owed       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, player_id, receipt_id)
);

-- What a player owes per currency: chargebacks' `owed` less what later top-ups repaid.
-- Purchases are refused while any of it is above zero.
CREATE TABLE player_debts (
    game_id   text NOT NULL REFERENCES games (id),
    player_id text NOT NULL,
    currency  text NOT NULL,
    amount    bigint NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (game_id, player_id, currency)
);

-- Steam orders this server opened with InitTxn: who opened it and for which product, so only
-- that player redeems it once Steam says it succeeded.
CREATE TABLE steam_orders (
    game_id          text NOT NULL REFERENCES games (id),
    order_id         bigint NOT NULL,
    player_id        text NOT NULL,
    steam_id         text NOT NULL,
    store_product_id text NOT NULL,
    trans_id         text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, order_id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['catalog_products', 'chargebacks'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION sk_refuse_change()', t || '_append_only', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION sk_refuse_change()', t || '_no_truncate', t);
    END LOOP;
END $$;
