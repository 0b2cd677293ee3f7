-- Day partitions: the one home of how the store's growing tables are partitioned by time and
-- expired by dropping whole days. Two tables use it: idempotency_keys by day of expiry
-- (migration 0012, sql/10_idempotency.sql) and the events outbox by day of its time (migration
-- 0016, sql/70_events.sql). Each table is PARTITION BY RANGE on a timestamptz column, with a
-- partition `<table>_YYYYMMDD` per UTC day ([day, day + 1 day)) and a `<table>_default` that
-- catches a row whose day has no partition yet (it stays empty unless nobody made the days
-- ahead for a while).
--
-- These three run with their caller's rights and are called only by each table's own
-- SECURITY DEFINER functions, which pass them fixed arguments (the server's role may call
-- these directly as well, and then can create or drop nothing: it owns no table). Each DDL
-- waits at most two seconds for its lock (a partition's creation or drop locks the parent
-- briefly, and the money path queues behind a waiting DDL): one that cannot have it is left
-- for the next run, with a warning.

-- The name of p_table's partition of the UTC day starting at p_day.
CREATE OR REPLACE FUNCTION sk_day_partition_name(p_table text, p_day timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_table || '_' || to_char(p_day AT TIME ZONE 'UTC', 'YYYYMMDD')
$$;

-- Makes p_table's partitions of every UTC day from today to p_until's; returns how many it
-- made. A day whose rows already sit in the default partition (nobody made its partition in
-- time) is skipped: its rows stay there, found and purged as before, and the days after it
-- get their partitions.
CREATE OR REPLACE FUNCTION sk_add_day_partitions(p_table text, p_until timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_day timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    v_name text;
    v_made integer := 0;
    v_lock_timeout text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', '2s', true);
    WHILE v_day <= p_until LOOP
        v_name := sk_day_partition_name(p_table, v_day);
        IF to_regclass(v_name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               v_name, p_table, sk_ts(v_day), sk_ts(v_day + interval '1 day'));
                v_made := v_made + 1;
            EXCEPTION
                WHEN duplicate_table OR unique_violation THEN
                    NULL;  -- another process made it a moment ago
                WHEN check_violation THEN
                    RAISE WARNING '% rows of % are in the default partition: % not made',
                        p_table, v_day, v_name;
                WHEN lock_not_available THEN
                    RAISE WARNING 'partition % not made: % was busy', v_name, p_table;
            END;
        END IF;
        v_day := v_day + interval '1 day';
    END LOOP;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
    RETURN v_made;
END $$;

-- Drops every day partition of p_table whose day ended at or before p_ended_by; returns how
-- many and how many rows they held: PostgreSQL's estimate (pg_class.reltuples, kept by
-- autovacuum) rather than a count of millions of rows, or a count when the partition was never
-- analyzed (so it is small). A partition holding a row that matches p_keep_if (a condition on
-- its columns, from the table's own function) is kept, with a warning, for a later run.
CREATE OR REPLACE FUNCTION sk_drop_day_partitions(
    p_table text, p_ended_by timestamptz, p_keep_if text DEFAULT NULL,
    OUT partitions integer, OUT row_count bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_partition regclass;
    v_estimate real;
    v_count bigint;
    v_kept boolean;
    v_lock_timeout text := current_setting('lock_timeout');
BEGIN
    partitions := 0;
    row_count := 0;
    PERFORM set_config('lock_timeout', '2s', true);
    FOR v_partition, v_estimate IN
        SELECT c.oid::regclass, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = p_table::regclass
           -- a day's partition (sk_day_partition_name) whose day is over by p_ended_by
           AND c.relname ~ ('^' || p_table || '_[0-9]{8}$')
           AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp
               <= p_ended_by AT TIME ZONE 'UTC'
         ORDER BY c.relname
    LOOP
        BEGIN
            IF p_keep_if IS NOT NULL THEN
                EXECUTE format('SELECT EXISTS (SELECT FROM %s WHERE %s)', v_partition, p_keep_if)
                   INTO v_kept;
                IF v_kept THEN
                    RAISE WARNING 'partition % kept: it has rows where %', v_partition, p_keep_if;
                    CONTINUE;
                END IF;
            END IF;
            IF v_estimate >= 0 THEN
                v_count := v_estimate::bigint;
            ELSE
                EXECUTE format('SELECT count(*) FROM %s', v_partition) INTO v_count;
            END IF;
            EXECUTE format('DROP TABLE %s', v_partition);
            partitions := partitions + 1;
            row_count := row_count + v_count;
        EXCEPTION
            WHEN undefined_table THEN
                NULL;  -- another process dropped it a moment ago
            WHEN lock_not_available THEN
                RAISE WARNING 'partition % not dropped: % was busy', v_partition, p_table;
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
END $$;

-- Deletes up to p_batch rows of p_table's default partition whose p_column is before p_before
-- (and that match p_also, a condition from the table's own function); returns how many. The
-- default partition is the one with an index on its time column for this. Called in a loop, a
-- short transaction per batch.
CREATE OR REPLACE FUNCTION sk_purge_default_partition(
    p_table text, p_column text, p_before timestamptz, p_batch integer,
    p_also text DEFAULT 'true'
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_deleted integer;
BEGIN
    EXECUTE format('DELETE FROM %1$I WHERE ctid IN (SELECT ctid FROM %1$I WHERE %2$I < $1'
                   ' AND (%3$s) LIMIT $2)', p_table || '_default', p_column, p_also)
      USING p_before, p_batch;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END $$;
