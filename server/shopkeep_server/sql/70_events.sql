-- Events: written by the transaction that makes their effect (the outbox, migration 0006), and
-- positioned afterwards by the sequencer, so the feed (store/events.py) never skips one.
--
-- Each operation adds one call line: sk_purchase calls sk_emit_purchase_event, sk_refund
-- sk_refund_event, sk_grant sk_grant_event, sk_consume sk_consume_event; sk_redeem_code
-- (66_offers.sql) and the receipts (64_receipts.sql) call sk_emit_event with their answers;
-- store/catalog.py calls sk_emit_event for publish, rollback and restock. An operation that is refused raises
-- before its call line (or rolls its subtransaction back), so a refusal writes no effect event
-- (a limit_exceeded writes its risk decision's, 65_risk.sql). The types written here and
-- there are the ones store/events.py lists (EVENT_TYPES), and a test checks both agree.

-- Writes one event of this transaction, without a position yet. No pg_notify: it would make
-- every commit of the money path wait in one line (sequencer.py says why and how much); the
-- sequencers poll, and the feed positions what is waiting before it reads.
CREATE OR REPLACE FUNCTION sk_emit_event(
    p_game text, p_type text, p_player text, p_data jsonb
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO events (game_id, type, player_id, data) VALUES (p_game, p_type, p_player, p_data);
$$;

-- The rows an operation wrote for a player under any of p_references, oldest first, in the
-- API's ledger shapes: {ledger, item_ledger}, for the events of the operations that do not
-- have their rows in hand (a refund, a receipt's redemption and chargeback). p_currency_rows
-- and p_item_rows are how many the operation wrote at most: the newest rows of the player are
-- read backwards through the primary key and the scan stops there, so the cost does not grow
-- with the player's history (a reference names one operation, so every row found is its own).
CREATE OR REPLACE FUNCTION sk_event_ledgers(
    p_game text, p_player text, p_references text[], p_currency_rows integer,
    p_item_rows integer
) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'ledger', (SELECT coalesce(jsonb_agg(sk_ledger_entry_json(e) ORDER BY e.id), '[]')
                     FROM (SELECT * FROM ledger_entries
                            WHERE game_id = p_game AND player_id = p_player
                              AND reference = ANY(p_references)
                            ORDER BY id DESC LIMIT p_currency_rows) e),
        'item_ledger', (SELECT coalesce(jsonb_agg(sk_item_ledger_entry_json(e) ORDER BY e.id),
                                        '[]')
                          FROM (SELECT * FROM item_ledger
                                 WHERE game_id = p_game AND player_id = p_player
                                   AND reference = ANY(p_references)
                                 ORDER BY id DESC LIMIT p_item_rows) e))
$$;

-- How many currency rows (price and granted currencies) and item rows (granted items) a
-- purchase, its refund or a grant writes at most: what sk_event_ledgers may stop after.
CREATE OR REPLACE FUNCTION sk_granted_rows(p_granted jsonb, p_key text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT count(*)::integer FROM jsonb_array_elements(p_granted) e WHERE e ? p_key
$$;

-- purchase.completed or purchase.refunded (p_type): the purchase as the API shows it
-- (sk_purchase_json) and the ledger rows the operation wrote, in the API's ledger shapes.
-- sk_purchase passes the rows it has just written; a refund reads its rows back
-- (sk_refund_event below).
CREATE OR REPLACE FUNCTION sk_emit_purchase_event(
    p_type text, p_game text, p_player text, p_purchase jsonb, p_ledger jsonb,
    p_item_ledger jsonb
) RETURNS void LANGUAGE sql AS $$
    SELECT sk_emit_event(p_game, p_type, p_player,
        jsonb_build_object('purchase', p_purchase, 'ledger', p_ledger,
                           'item_ledger', p_item_ledger))
$$;

-- purchase.refunded: the purchase as it stands and the rows the refund wrote, read back.
CREATE OR REPLACE FUNCTION sk_refund_event(p_purchase purchases) RETURNS void
LANGUAGE sql AS $$
    SELECT sk_emit_purchase_event('purchase.refunded', p_purchase.game_id,
        p_purchase.player_id, sk_purchase_json(p_purchase), l->'ledger', l->'item_ledger')
      FROM sk_event_ledgers(p_purchase.game_id, p_purchase.player_id,
               ARRAY['refund:' || p_purchase.id::text],
               (p_purchase.total_price > 0)::integer
                   + sk_granted_rows(p_purchase.granted, 'currency'),
               sk_granted_rows(p_purchase.granted, 'sku')) AS l
$$;

-- grant.created: the grant as the API shows it (sk_grant_json) and the rows it wrote (in the
-- API's ledger shapes, from sk_grant).
CREATE OR REPLACE FUNCTION sk_grant_event(
    p_game text, p_grant jsonb, p_ledger jsonb, p_item_ledger jsonb
) RETURNS void LANGUAGE sql AS $$
    SELECT sk_emit_event(p_game, 'grant.created', p_grant->>'player_id',
        jsonb_build_object('grant', p_grant, 'ledger', p_ledger, 'item_ledger', p_item_ledger))
$$;

-- item.consumed: the API's answer (the sku and how many are left) and the item ledger row.
CREATE OR REPLACE FUNCTION sk_consume_event(p_game text, p_entry item_ledger) RETURNS void
LANGUAGE sql AS $$
    SELECT sk_emit_event(p_game, 'item.consumed', p_entry.player_id,
        jsonb_build_object(
            'sku', p_entry.sku, 'quantity', p_entry.quantity_after, 'ledger', '[]'::jsonb,
            'item_ledger', jsonb_build_array(sk_item_ledger_entry_json(p_entry))))
$$;

-- stock.sold_out, exactly once per sell-out: when a sale leaves no unit of a limited item
-- unsold, none in the buckets and none in a hold (an active hold's units may still come back:
-- released, or expired and put back). Placing a hold never sells an item out.
--
-- Every sale that may be the last comes here, after its units are taken: a purchase that left
-- a bucket empty (holding that bucket's lock) or took a hold's units (holding the hold's). A
-- lock per (game, sku) puts them in a line, and each looks in a snapshot taken after it got the
-- lock (a new statement of a volatile function, under READ COMMITTED): the one that finds
-- nothing left is the last, since every sale before it in the line has committed. Two buyers
-- emptying the last two buckets at once would each see the other's bucket unchanged without
-- the line, and neither would say "sold out". The rest of a drop never takes the lock.
CREATE OR REPLACE FUNCTION sk_check_sold_out(p_game text, p_sku text, p_player text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- The two-key form: a space of its own, apart from the single-key locks (migrations, purges).
    PERFORM pg_advisory_xact_lock(x'5E0B'::integer, hashtext(p_game || '/' || p_sku));
    IF NOT EXISTS (SELECT FROM stock_buckets
                    WHERE game_id = p_game AND sku = p_sku AND remaining > 0)
       AND NOT EXISTS (SELECT FROM holds
                        WHERE game_id = p_game AND sku = p_sku AND status = 'active') THEN
        PERFORM sk_emit_event(p_game, 'stock.sold_out', p_player,
                              jsonb_build_object('sku', p_sku, 'remaining', 0));
    END IF;
END $$;

-- The sequencer: gives the next positions of each game to up to p_batch committed events still
-- without one, in seq order (a per-game prefix of the rows it can see). One process at a time
-- (an advisory lock, held until this transaction ends): the statement that positions the rows
-- takes its snapshot only after the lock is held, so it sees every row the previous holder saw.
-- Returns how many rows of each type got a position ({"purchase.completed": 3, ...}; every
-- committed event is counted once, by the pass that positions it), or NULL when another
-- process held the lock (for p_wait_ms, 0 meaning not at all): that process does the work.
--
-- Why no event is lost: a row is positioned only once it is visible (committed), positions only
-- grow, and a row that commits after a pass is positioned by a later pass, above every position
-- given before. Per player, the wallet lock makes a player's earlier event commit before a later
-- one is inserted, so any snapshot that sees the later one sees the earlier one too: per-player
-- order is position order.
CREATE OR REPLACE FUNCTION sk_position_events(p_batch integer, p_wait_ms integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_positioned jsonb;
BEGIN
    IF p_wait_ms > 0 THEN
        BEGIN
            PERFORM set_config('lock_timeout', p_wait_ms::text || 'ms', true);
            PERFORM pg_advisory_xact_lock(x'5E0B0012'::bigint);
        EXCEPTION WHEN lock_not_available THEN
            RETURN NULL;
        END;
        PERFORM set_config('lock_timeout', '0', true);
    ELSIF NOT pg_try_advisory_xact_lock(x'5E0B0012'::bigint) THEN
        RETURN NULL;
    END IF;
    -- created_at too: with it a row is found by the whole primary key of its day's partition
    -- (the outbox is partitioned by day, migration 0016).
    WITH pending AS (
        SELECT w.game_id, w.seq, w.created_at,
               row_number() OVER (PARTITION BY w.game_id ORDER BY w.seq) AS n
          FROM (SELECT game_id, seq, created_at FROM events WHERE id IS NULL
                 ORDER BY seq LIMIT p_batch) w
    ), added AS (
        SELECT game_id, max(n) AS count FROM pending GROUP BY game_id
    ), counters AS (
        INSERT INTO event_positions AS p (game_id, last_id)
        SELECT game_id, count FROM added
        ON CONFLICT (game_id) DO UPDATE SET last_id = p.last_id + EXCLUDED.last_id
        RETURNING p.game_id, p.last_id
    ), positioned AS (
        UPDATE events e SET id = c.last_id - a.count + w.n
          FROM pending w
          JOIN added a USING (game_id)
          JOIN counters c USING (game_id)
         WHERE e.game_id = w.game_id AND e.seq = w.seq AND e.created_at = w.created_at
        RETURNING e.type
    )
    SELECT coalesce(jsonb_object_agg(type, n), '{}') INTO v_positioned
      FROM (SELECT type, count(*) AS n FROM positioned GROUP BY type) t;
    RETURN v_positioned;
END $$;

-- An event as the feed shows it and a webhook delivers it (one shape for both).
CREATE OR REPLACE FUNCTION sk_event_json(e events) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', e.id, 'type', e.type, 'player_id', e.player_id,
                              'created_at', sk_ts(e.created_at), 'data', e.data)
$$;

-- Retention (SHOPKEEP_EVENT_RETENTION) by partition: the outbox is partitioned by day of the
-- event's time (migration 0016) with the day partitions of sql/05_partitions.sql. The server's
-- janitor (serving.Janitor, one process at a time under an advisory lock) and `shopkeep-server
-- purge-events` call these (store/events.py); migrate calls the first. They run as the tables'
-- owner (SECURITY DEFINER, search_path pinned below): the server's role may neither create nor
-- drop tables nor delete events.

-- Makes the outbox's partitions of every UTC day from today to p_until's; returns how many.
CREATE OR REPLACE FUNCTION sk_events_add_partitions(p_until timestamptz) RETURNS integer
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT sk_add_day_partitions('events', p_until)
$$;

-- Drops every day whose end is more than the retention ago (so an event is kept at least the
-- retention, and at most a day longer); returns how many partitions and events (an estimate
-- for large ones). A day still holding an event without a position is kept: the feed has not
-- shown it yet (only a sequencer stopped for the whole retention leaves one).
CREATE OR REPLACE FUNCTION sk_events_drop_partitions(
    p_retention_seconds integer, OUT partitions integer, OUT events bigint
) LANGUAGE sql SECURITY DEFINER AS $$
    SELECT partitions, row_count
      FROM sk_drop_day_partitions('events', now() - make_interval(secs => p_retention_seconds),
                                  'id IS NULL')
$$;

-- Deletes up to p_batch positioned events of the default partition older than the retention;
-- returns how many.
CREATE OR REPLACE FUNCTION sk_events_purge_default(p_retention_seconds integer, p_batch integer)
RETURNS integer LANGUAGE sql SECURITY DEFINER AS $$
    SELECT sk_purge_default_partition('events', 'created_at',
                                      now() - make_interval(secs => p_retention_seconds), p_batch,
                                      'id IS NOT NULL')
$$;

-- The webhook delivery log (migration 0007) keeps the attempts of the retention as well: an
-- attempt at an event the feed no longer has tells nothing anyone can act on (the event cannot
-- be sent again). A bounded purge rather than partitions: the log is read per endpoint, newest
-- first by its id, and removed with its endpoint by a cascade, and it grows with deliveries
-- (one row per attempt per endpoint), not with every purchase; a batch of up to p_batch rows
-- by its time index (migration 0016) per call, a short transaction each. Returns how many.
CREATE OR REPLACE FUNCTION sk_webhook_deliveries_purge(p_retention_seconds integer,
                                                       p_batch integer)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_deleted integer;
BEGIN
    DELETE FROM webhook_deliveries WHERE ctid IN (
        SELECT ctid FROM webhook_deliveries
         WHERE attempted_at < now() - make_interval(secs => p_retention_seconds)
         LIMIT p_batch);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END $$;

-- A SECURITY DEFINER function resolves names with the caller's search_path unless it pins its
-- own: these see this schema only (pg_temp last, so no temporary table can stand in).
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['sk_events_add_partitions(timestamptz)',
                             'sk_events_drop_partitions(integer)',
                             'sk_events_purge_default(integer, integer)',
                             'sk_webhook_deliveries_purge(integer, integer)'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
END $$;
