-- The events outbox partitioned by day of the event's time (created_at), one partition per UTC
-- day, so retention (SHOPKEEP_EVENT_RETENTION) drops whole days instead of deleting rows in
-- batches: at 1,000 purchases a second the outbox gains 86 million rows a day, as the
-- idempotency keys did before migration 0012. The partitions are managed as those are, by the
-- day partitions of sql/05_partitions.sql (sql/70_events.sql has the outbox's own functions).
--
-- A partitioned table's unique indexes must contain the partition column:
-- - the primary key becomes (game_id, seq, created_at); seq stays drawn from one identity
--   sequence, so it is still unique by itself;
-- - the feed's index (game_id, id) is no longer UNIQUE. A position was never unique because of
--   the index: sk_position_events gives each game's positions from its counter in
--   event_positions, one process at a time under an advisory lock, each position once. The
--   index stays what every read of the feed and the webhooks goes through (in each partition:
--   WHERE game_id = $1 AND id > $2 ORDER BY id is a merge of the partitions' index scans).
-- A DEFAULT partition catches an event whose day has no partition yet (migrate and the server
-- make them days ahead); it is the one with an index on created_at, for the batched purge
-- that empties it.
--
-- Every row moves as it is: its seq, its position, its time and its data, and the identity
-- sequence goes on where it was, so every cursor a reader holds and every webhook's progress
-- keep naming the same events. The copy holds the table's lock for as long as it takes: on a
-- large outbox, run `shopkeep-server purge-events` before upgrading.
--
-- The webhook delivery log (migration 0007) had no retention: it gets an index on its time for
-- the bounded purge in sql/70_events.sql (it goes with the events it tells about).
ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
ALTER INDEX events_by_position RENAME TO events_unpartitioned_by_position;
ALTER INDEX events_unpositioned RENAME TO events_unpartitioned_unpositioned;
ALTER INDEX events_by_age RENAME TO events_unpartitioned_by_age;
ALTER SEQUENCE events_seq_seq RENAME TO events_unpartitioned_seq_seq;

CREATE TABLE events (
    game_id    text NOT NULL REFERENCES games (id),
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    id         bigint CHECK (id >= 1),
    type       text NOT NULL CHECK (type ~ '^[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*$'),
    player_id  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    data       jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    PRIMARY KEY (game_id, seq, created_at)
) PARTITION BY RANGE (created_at);
-- The feed: WHERE game_id = $1 AND id > $cursor ORDER BY id.
CREATE INDEX events_by_position ON events (game_id, id) WHERE id IS NOT NULL;
-- The sequencer's work list: the rows still waiting for a position (a small index).
CREATE INDEX events_unpositioned ON events (seq) WHERE id IS NULL;

CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_default_age ON events_default (created_at) WHERE id IS NOT NULL;

-- Written once, as before (the trigger function is migration 0006's).
CREATE TRIGGER events_written_once BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION sk_event_written_once();

-- A partition for every UTC day from the oldest event's to two days ahead, so the rows below
-- land in day partitions, not in the default. The same names and bounds as
-- sk_add_day_partitions (sql/05_partitions.sql), which a migration may not rely on (the
-- function files are applied after the migrations, and change with later releases).
DO $$
DECLARE
    d timestamptz;
    last_day timestamptz := now() + interval '2 days';
BEGIN
    SELECT date_trunc('day', least(min(created_at), now()) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
      INTO d FROM events_unpartitioned;
    WHILE d <= last_day LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            'events_' || to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'),
            to_char(d AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'),
            to_char((d + interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
        d := d + interval '1 day';
    END LOOP;
END $$;

INSERT INTO events (game_id, seq, id, type, player_id, created_at, data) OVERRIDING SYSTEM VALUE
SELECT game_id, seq, id, type, player_id, created_at, data FROM events_unpartitioned;

-- The new identity sequence goes on from the old one's state (not from max(seq): a seq drawn
-- by a transaction that rolled back is never given again).
SELECT setval(pg_get_serial_sequence('events', 'seq'), last_value, is_called)
  FROM events_unpartitioned_seq_seq;

-- The function files' functions that take an event row (sk_event_json(events), ...) were made
-- for the old table's row type: they go, and the files are applied again right after the
-- migrations (forgetting their checksums makes migrate do so), for the new table, with their
-- privileges (sql/90_privileges.sql) on it.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT DISTINCT d.objid::regprocedure FROM pg_depend d
              WHERE d.classid = 'pg_proc'::regclass
                AND d.refclassid = 'pg_type'::regclass
                AND d.refobjid = 'events_unpartitioned'::regtype LOOP
        EXECUTE format('DROP FUNCTION %s', f);
    END LOOP;
END $$;
DELETE FROM schema_functions;

DROP TABLE events_unpartitioned;

CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries (attempted_at);
