-- Exactly once per (game, subject, key). Each operation (60_purchase.sql ... 63_consume.sql)
-- claims its key with sk_idempotency_begin, replays a stored outcome if there is one, runs,
-- and stores its outcome with sk_idempotency_finish (the key's row is written only then, in
-- one INSERT): all in the caller's one statement, so the outcome is committed exactly when the
-- effects are. store/idempotency.py's run_once uses the
-- same two functions for the studio's non-money work.

-- Claims (game, subject, key) for this transaction, or returns the stored outcome.
-- status is NULL exactly when the key is ours: no live row, and its lock held until this
-- transaction ends, so no twin can store another outcome meanwhile.
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
    -- Almost always no twin is in flight: the lock is taken at once, without the
    -- subtransaction that waiting under a lock timeout needs (docs/benchmarks.md measures it).
    IF NOT pg_try_advisory_xact_lock(hashtext(p_game || '/' || p_subject), hashtext(p_key)) THEN
        BEGIN
            PERFORM set_config('lock_timeout', greatest(p_wait_ms, 1)::text || 'ms', true);
            PERFORM pg_advisory_xact_lock(hashtext(p_game || '/' || p_subject), hashtext(p_key));
        EXCEPTION WHEN lock_not_available THEN
            RAISE EXCEPTION USING ERRCODE = 'SKI01', MESSAGE = 'idempotency_key_in_use',
                HINT = 'a request with this Idempotency-Key is still being processed',
                DETAIL = '{}';
        END;
        PERFORM set_config('lock_timeout', '0', true);
    END IF;
    SELECT k.fingerprint, k.status, k.response_body INTO v_fingerprint, status, body
      FROM idempotency_keys k
     WHERE k.game_id = p_game AND k.subject = p_subject AND k.key = p_key
       AND k.expires_at > now();
    IF NOT FOUND THEN
        RETURN;  -- a new key, so ours: nothing to replay
    END IF;
    IF v_fingerprint <> p_fingerprint THEN
        RAISE EXCEPTION USING ERRCODE = 'SKV02', MESSAGE = 'idempotency_key_reused',
            HINT = 'this Idempotency-Key was used for a different request', DETAIL = '{}';
    END IF;
END $$;

-- Stores the outcome of a key this transaction claimed (sk_idempotency_begin found no live
-- row and holds the key's lock). An expired twin may linger in its partition: its expiry, part
-- of the primary key, tells the two rows apart.
CREATE OR REPLACE FUNCTION sk_idempotency_finish(
    p_game text, p_subject text, p_key text, p_fingerprint text, p_ttl_seconds integer,
    p_status integer, p_body text
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, expires_at, status,
                                  response_body)
    VALUES (p_game, p_subject, p_key, p_fingerprint,
            now() + make_interval(secs => p_ttl_seconds), p_status, p_body);
$$;

-- Expiry by partition (the day partitions of sql/05_partitions.sql). The server's janitor
-- (serving.Janitor, one process at a time under an advisory lock) and `shopkeep-server
-- purge-idempotency` call these three; migrate calls the first, so a fresh database has its
-- partitions at once. They run as the tables' owner (SECURITY DEFINER, search_path pinned to
-- this schema below): the server's role owns nothing and may not create or drop tables, and
-- may not read the partitions directly either.

-- The name of the partition of the UTC day starting at p_day.
CREATE OR REPLACE FUNCTION sk_idempotency_partition_name(p_day timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT sk_day_partition_name('idempotency_keys', p_day)
$$;

-- Makes the partitions of every UTC day from today to p_until's; returns how many it made.
CREATE OR REPLACE FUNCTION sk_idempotency_add_partitions(p_until timestamptz) RETURNS integer
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT sk_add_day_partitions('idempotency_keys', p_until)
$$;

-- Drops every partition whose day is over (all its keys expired: the table is partitioned by
-- expiry); returns how many and how many keys they held (an estimate for large ones).
CREATE OR REPLACE FUNCTION sk_idempotency_drop_partitions(OUT partitions integer, OUT keys bigint)
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT partitions, row_count FROM sk_drop_day_partitions('idempotency_keys', now())
$$;

-- Deletes up to p_batch expired keys of the default partition; returns how many.
CREATE OR REPLACE FUNCTION sk_idempotency_purge_default(p_batch integer) RETURNS integer
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT sk_purge_default_partition('idempotency_keys', 'expires_at', now(), p_batch)
$$;

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
