-- Exactly once per (game, subject, key). Each operation (60_purchase.sql ... 63_consume.sql)
-- claims its key with sk_idempotency_begin, replays a stored outcome if there is one, runs,
-- and stores its outcome with sk_idempotency_finish: all in the caller's one statement, so the
-- outcome is committed exactly when the effects are. store/idempotency.py's run_once uses the
-- same two functions for the studio's non-money work.

-- Claims (game, subject, key) for this transaction, or returns the stored outcome.
-- status is NULL exactly when the row is ours (inserted by this transaction).
--
-- idempotency_keys is partitioned by expires_at, a partition per UTC day (migration 0012), and
-- its primary key is (game_id, subject, key, expires_at): the unique index no longer makes a
-- key unique by itself, since two claims of one key at a day's boundary would compute
-- expires_at in two partitions and both insert. So a claim first takes a transaction-scoped
-- advisory lock on the key (a 64-bit hash of game and subject, and of key; a collision only
-- makes two unrelated keys wait for each other): a duplicate whose twin is still in flight
-- waits on it, past p_wait_ms it gets idempotency_key_in_use, and once the twin has committed
-- its next statement sees the twin's row and replays it. The lock is the two-integer kind,
-- whose space no other lock of the store uses.
--
-- The lookup is bounded to live keys, `expires_at > now()`: partitions whose day is past are
-- pruned at execution, so it reads the partitions of today and the days ahead (three with the
-- 24 h TTL: keys live for the TTL, and the server makes partitions only a day beyond it) and
-- the default one, whatever TTL each key was stored with. A bound on the other
-- side (`expires_at <= now() + TTL`) would prune the days ahead too, but would miss the keys
-- stored while the TTL was longer, which must still replay. An expired key is not found, so it
-- counts as new: the store promises a key for its TTL, and an expired row left in a partition
-- not yet dropped is no longer the key's (the primary key tells the two rows apart by expiry).
CREATE OR REPLACE FUNCTION sk_idempotency_begin(
    p_game text, p_subject text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer,
    OUT status integer, OUT body text
) LANGUAGE plpgsql AS $$
DECLARE
    v_fingerprint text;
BEGIN
    BEGIN
        PERFORM set_config('lock_timeout', greatest(p_wait_ms, 1)::text || 'ms', true);
        PERFORM pg_advisory_xact_lock(hashtext(p_game || '/' || p_subject), hashtext(p_key));
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION USING ERRCODE = 'SKI01', MESSAGE = 'idempotency_key_in_use',
            HINT = 'a request with this Idempotency-Key is still being processed', DETAIL = '{}';
    END;
    PERFORM set_config('lock_timeout', '0', true);
    SELECT k.fingerprint, k.status, k.response_body INTO v_fingerprint, status, body
      FROM idempotency_keys k
     WHERE k.game_id = p_game AND k.subject = p_subject AND k.key = p_key
       AND k.expires_at > now();
    IF NOT FOUND THEN
        -- A new key, so ours: nothing to replay and the fingerprint is the one given.
        INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, expires_at)
        VALUES (p_game, p_subject, p_key, p_fingerprint,
                now() + make_interval(secs => p_ttl_seconds));
        RETURN;
    END IF;
    IF v_fingerprint <> p_fingerprint THEN
        RAISE EXCEPTION USING ERRCODE = 'SKV02', MESSAGE = 'idempotency_key_reused',
            HINT = 'this Idempotency-Key was used for a different request', DETAIL = '{}';
    END IF;
END $$;

-- The live row is the one this transaction claimed (an expired twin may linger).
CREATE OR REPLACE FUNCTION sk_idempotency_finish(
    p_game text, p_subject text, p_key text, p_status integer, p_body text
) RETURNS void LANGUAGE sql AS $$
    UPDATE idempotency_keys SET status = p_status, response_body = p_body
     WHERE game_id = p_game AND subject = p_subject AND key = p_key AND expires_at > now();
$$;

-- Expiry by partition. The server's janitor (serving.Janitor, one process at a time under an
-- advisory lock) and `shopkeep-server purge-idempotency` call these three; migrate calls the
-- first, so a fresh database has its partitions at once. They run as the tables' owner
-- (SECURITY DEFINER, search_path pinned to this schema below): the server's role owns nothing
-- and may not create or drop tables, and may not read the partitions directly either. Each DDL
-- waits at most two seconds for its lock (a partition's drop or creation locks the parent
-- briefly, and purchases queue behind a waiting DDL): one that cannot have it is left for the
-- next run, with a warning.

-- The name of the partition of the UTC day starting at p_day.
CREATE OR REPLACE FUNCTION sk_idempotency_partition_name(p_day timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'idempotency_keys_' || to_char(p_day AT TIME ZONE 'UTC', 'YYYYMMDD')
$$;

-- Makes the partitions of every UTC day from today to p_until's; returns how many it made.
-- A day whose keys already sit in the default partition (nobody made its partition in time)
-- is skipped: its keys stay there, found and purged as before, and the days after it get
-- their partitions.
CREATE OR REPLACE FUNCTION sk_idempotency_add_partitions(p_until timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_day timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    v_name text;
    v_made integer := 0;
    v_lock_timeout text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', '2s', true);
    WHILE v_day <= p_until LOOP
        v_name := sk_idempotency_partition_name(v_day);
        IF to_regclass(v_name) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF idempotency_keys FOR VALUES FROM (%L) TO (%L)',
                    v_name, sk_ts(v_day), sk_ts(v_day + interval '1 day'));
                v_made := v_made + 1;
            EXCEPTION
                WHEN duplicate_table OR unique_violation THEN
                    NULL;  -- another process made it a moment ago
                WHEN check_violation THEN
                    RAISE WARNING 'idempotency keys of % are in the default partition: % not made',
                        v_day, v_name;
                WHEN lock_not_available THEN
                    RAISE WARNING 'partition % not made: idempotency_keys was busy', v_name;
            END;
        END IF;
        v_day := v_day + interval '1 day';
    END LOOP;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
    RETURN v_made;
END $$;

-- Drops every partition whose day is over (all its keys expired); returns how many keys they
-- held: PostgreSQL's estimate (pg_class.reltuples, kept by autovacuum) rather than a count of
-- millions of rows, or a count when the partition was never analyzed (so it is small).
CREATE OR REPLACE FUNCTION sk_idempotency_drop_partitions(OUT partitions integer, OUT keys bigint)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_partition regclass;
    v_estimate real;
    v_count bigint;
    v_lock_timeout text := current_setting('lock_timeout');
BEGIN
    partitions := 0;
    keys := 0;
    PERFORM set_config('lock_timeout', '2s', true);
    FOR v_partition, v_estimate IN
        SELECT c.oid::regclass, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'idempotency_keys'::regclass
           -- a day's partition (sk_idempotency_partition_name) whose day is over
           AND c.relname ~ '^idempotency_keys_[0-9]{8}$'
           AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp
               <= now() AT TIME ZONE 'UTC'
         ORDER BY c.relname
    LOOP
        BEGIN
            IF v_estimate >= 0 THEN
                v_count := v_estimate::bigint;
            ELSE
                EXECUTE format('SELECT count(*) FROM %s', v_partition) INTO v_count;
            END IF;
            EXECUTE format('DROP TABLE %s', v_partition);
            partitions := partitions + 1;
            keys := keys + v_count;
        EXCEPTION
            WHEN undefined_table THEN
                NULL;  -- another process dropped it a moment ago
            WHEN lock_not_available THEN
                RAISE WARNING 'partition % not dropped: idempotency_keys was busy', v_partition;
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
END $$;

-- Deletes up to p_batch expired keys of the default partition (the only one with an index on
-- expires_at); returns how many. Called in a loop, a short transaction per batch.
CREATE OR REPLACE FUNCTION sk_idempotency_purge_default(p_batch integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_deleted integer;
BEGIN
    DELETE FROM idempotency_keys_default WHERE ctid IN (
        SELECT ctid FROM idempotency_keys_default WHERE expires_at < now() LIMIT p_batch);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END $$;

-- A SECURITY DEFINER function resolves names with the caller's search_path unless it pins its
-- own: these see this schema only (pg_temp last, so no temporary table can stand in).
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['sk_idempotency_add_partitions(timestamptz)',
                             'sk_idempotency_drop_partitions()',
                             'sk_idempotency_purge_default(integer)'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
END $$;
