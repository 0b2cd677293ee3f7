-- idempotency_keys partitioned by expires_at, one partition per UTC day, so expiry drops whole
-- partitions instead of deleting rows one by one (at 1,000 purchases a second the table gains
-- 86 million rows a day). Why expires_at and not created_at: a partition whose upper bound is
-- past holds only expired keys whatever TTL each was stored with, so it can be dropped without
-- knowing any TTL; and "live" is exactly `expires_at > now()`, the bound the lookup uses
-- (sql/10_idempotency.sql explains the lookup and why keys stay unique across partitions).
--
-- A partitioned table's primary key must contain the partition column, so the key becomes
-- (game_id, subject, key, expires_at): uniqueness of (game, subject, key) among live keys is
-- kept by sk_idempotency_begin, which serializes a key's claims with a transaction-scoped
-- advisory lock. A DEFAULT partition catches a row whose day has no partition yet (the server
-- and migrate create them days ahead; it stays empty unless nobody did for days); it is the
-- one partition with an index on expires_at, for the batched purge that empties it.
--
-- The rows of an upgraded database move as they are (fingerprint, status, body, expiry), so
-- its keys replay byte for byte. The copy holds the table's lock for as long as it takes: on a
-- large table, run `shopkeep-server purge-idempotency` before upgrading.
ALTER TABLE idempotency_keys RENAME TO idempotency_keys_unpartitioned;
ALTER INDEX idempotency_keys_pkey RENAME TO idempotency_keys_unpartitioned_pkey;
ALTER INDEX idempotency_keys_expiry RENAME TO idempotency_keys_unpartitioned_expiry;

CREATE TABLE idempotency_keys (
    game_id       text NOT NULL,
    subject       text NOT NULL,
    key           text NOT NULL,
    fingerprint   text NOT NULL,
    status        smallint,
    response_body text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (game_id, subject, key, expires_at)
) PARTITION BY RANGE (expires_at);

CREATE TABLE idempotency_keys_default PARTITION OF idempotency_keys DEFAULT;
CREATE INDEX idempotency_keys_default_expiry ON idempotency_keys_default (expires_at);

-- A partition for every UTC day from today to the last day an existing key expires on (and
-- two days ahead at least: the 24 h TTL and a day), so the rows below land in day partitions,
-- not in the default.
-- The same names and bounds as sk_idempotency_add_partitions (sql/10_idempotency.sql), which
-- does not exist yet while migrations run; from now on migrate and the server call it.
DO $$
DECLARE
    first_day timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    last_day timestamptz;
    d timestamptz;
BEGIN
    SELECT greatest(max(expires_at), now() + interval '2 days') INTO last_day
      FROM idempotency_keys_unpartitioned;
    d := first_day;
    WHILE d <= last_day LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF idempotency_keys FOR VALUES FROM (%L) TO (%L)',
            'idempotency_keys_' || to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'),
            to_char(d AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'),
            to_char((d + interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
        d := d + interval '1 day';
    END LOOP;
END $$;

INSERT INTO idempotency_keys
    (game_id, subject, key, fingerprint, status, response_body, created_at, expires_at)
SELECT game_id, subject, key, fingerprint, status, response_body, created_at, expires_at
  FROM idempotency_keys_unpartitioned;

DROP TABLE idempotency_keys_unpartitioned;
