-- What the server's role (shopkeep_app, made by migration 0005) may do in this schema. Applied
-- after the other function files, whenever any of them changes: they are dropped and made
-- again then, and their EXECUTE grants with them. Everything is revoked first, so a privilege
-- taken off this file is taken off the database too.
--
-- Invoker-rights money functions and exactly the DML the API needs, rather than SECURITY
-- DEFINER functions: the store code writes games, catalogs, keys, studio sessions and
-- idempotency keys with its own statements as well as through the functions, so the role
-- needs table privileges either way, and one list here covers both. (A definer function also
-- runs with the owner's rights under the caller's search_path, a hazard this avoids.)
--
-- The append-only tables get SELECT and INSERT only: UPDATE, DELETE and TRUNCATE are refused
-- by the missing privilege before the triggers are reached, and the role owns no table or
-- function, so it cannot disable a trigger, drop one or drop the functions. It is no superuser
-- either, so `session_replication_role` is out of its reach.
DO $$
DECLARE
    s text := current_schema();
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO shopkeep_app', s);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM shopkeep_app', s);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM shopkeep_app', s);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO shopkeep_app', s);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO shopkeep_app', s);
END $$;

-- Append-only: rows are added, never changed.
GRANT INSERT ON ledger_entries, item_ledger, catalog_versions, catalog_currencies,
    catalog_items, stock_restocks, grants TO shopkeep_app;
GRANT INSERT ON catalog_products, chargebacks TO shopkeep_app;
-- Personalized offers (issue 15): a version's offers and codes are catalog rows like its items.
GRANT INSERT ON catalog_offers, catalog_promo_codes TO shopkeep_app;
GRANT INSERT ON catalog_item_segments TO shopkeep_app;

-- Current state the money path and the studio change in place (SELECT ... FOR UPDATE needs
-- UPDATE too).
GRANT INSERT, UPDATE ON games, game_keys, stock_levels, stock_buckets, wallets, inventories,
    purchases, player_item_counts TO shopkeep_app;
GRANT INSERT, UPDATE ON store_accounts, receipts, player_debts TO shopkeep_app;
-- Steam orders this server opened: written once, read when the order is redeemed.
GRANT INSERT ON steam_orders TO shopkeep_app;
-- A player's one row (migration 0014): first seen, country and attributes, tier and freeze.
GRANT INSERT, UPDATE ON player_profiles, promo_code_budgets, promo_redemptions,
    player_offer_counts TO shopkeep_app;

-- Rows with a lifetime: the purge deletes expired idempotency keys, sign-out and expiry delete
-- studio sessions.
GRANT INSERT, UPDATE, DELETE ON idempotency_keys, studio_sessions TO shopkeep_app;

-- The events outbox: operations insert events, the sequencer sets their position (a trigger
-- refuses any other change) and counts positions per game. Retention drops whole days as the
-- owner (sql/70_events.sql): the role deletes no event.
GRANT INSERT, UPDATE ON events TO shopkeep_app;
GRANT INSERT, UPDATE ON event_positions TO shopkeep_app;

-- The shared rate limit's counters: counted on every request, deleted when their window ended.
GRANT INSERT, UPDATE, DELETE ON rate_limit_windows TO shopkeep_app;

-- The partitions of idempotency_keys (migration 0012) and events (0016) are reached through
-- their table only, as the ones the janitor makes later are: no privilege of their own, not
-- even the SELECT given to every table above. The maintenance functions (05_partitions.sql's,
-- through 10_idempotency.sql's and 70_events.sql's) run as the owner.
DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT inhrelid::regclass FROM pg_inherits
              WHERE inhparent IN ('idempotency_keys'::regclass, 'events'::regclass) LOOP
        EXECUTE format('REVOKE ALL ON %s FROM shopkeep_app', p);
    END LOOP;
END $$;

-- Holds (31_holds.sql) change status in place; the janitor deletes the ended ones.
GRANT INSERT, UPDATE, DELETE ON holds TO shopkeep_app;

-- Webhooks: endpoints are added, changed and deleted by the studio; the delivery workers move
-- the progress on and take "send again" requests off their list; the delivery log only grows
-- for the role (its retention, sk_webhook_deliveries_purge, runs as the owner; deleting an
-- endpoint cascades to its rows with the owner's rights).
GRANT INSERT, UPDATE, DELETE ON webhook_endpoints TO shopkeep_app;
GRANT INSERT, UPDATE ON webhook_progress TO shopkeep_app;
GRANT INSERT, DELETE ON webhook_resends TO shopkeep_app;
GRANT INSERT ON webhook_deliveries TO shopkeep_app;
-- Risk controls (migration 0008): decisions are appended, the mint breakers change in place
-- (a player's tier and freeze are on its player_profiles row).
GRANT INSERT ON risk_events, risk_breaker_log TO shopkeep_app;
GRANT INSERT, UPDATE ON risk_breakers TO shopkeep_app;
