-- Exactly once per (game, subject, key). Each operation (60_purchase.sql ... 63_consume.sql)
-- claims its key with sk_idempotency_begin, replays a stored outcome if there is one, runs,
-- and stores its outcome with sk_idempotency_finish: all in the caller's one statement, so the
-- outcome is committed exactly when the effects are. store/idempotency.py's run_once uses the
-- same two functions for the studio's non-money work.

-- Claims (game, subject, key) for this transaction, or returns the stored outcome.
-- A duplicate whose twin is still in flight waits on the twin's uncommitted row (the unique
-- index makes it), then replays its outcome; past p_wait_ms it gets idempotency_key_in_use.
-- status is NULL exactly when the row is ours (inserted by this transaction).
CREATE OR REPLACE FUNCTION sk_idempotency_begin(
    p_game text, p_subject text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer,
    OUT status integer, OUT body text
) LANGUAGE plpgsql AS $$
DECLARE
    v_fingerprint text;
    v_claimed boolean;
BEGIN
    BEGIN
        PERFORM set_config('lock_timeout', greatest(p_wait_ms, 1)::text || 'ms', true);
        INSERT INTO idempotency_keys (game_id, subject, key, fingerprint, expires_at)
        VALUES (p_game, p_subject, p_key, p_fingerprint,
                now() + make_interval(secs => p_ttl_seconds))
        ON CONFLICT DO NOTHING
        RETURNING true INTO v_claimed;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION USING ERRCODE = 'SKI01', MESSAGE = 'idempotency_key_in_use',
            HINT = 'a request with this Idempotency-Key is still being processed', DETAIL = '{}';
    END;
    PERFORM set_config('lock_timeout', '0', true);
    IF v_claimed THEN
        RETURN;  -- a new key, so ours: nothing to replay and the fingerprint is the one given
    END IF;
    SELECT k.fingerprint, k.status, k.response_body INTO v_fingerprint, status, body
      FROM idempotency_keys k
     WHERE k.game_id = p_game AND k.subject = p_subject AND k.key = p_key;
    IF v_fingerprint <> p_fingerprint THEN
        RAISE EXCEPTION USING ERRCODE = 'SKV02', MESSAGE = 'idempotency_key_reused',
            HINT = 'this Idempotency-Key was used for a different request', DETAIL = '{}';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION sk_idempotency_finish(
    p_game text, p_subject text, p_key text, p_status integer, p_body text
) RETURNS void LANGUAGE sql AS $$
    UPDATE idempotency_keys SET status = p_status, response_body = p_body
     WHERE game_id = p_game AND subject = p_subject AND key = p_key;
$$;
