-- Fraud and abuse controls: the live catalog's `risk` policy, enforced inside the money
-- operations' own statements (60_purchase.sql ... 63_consume.sql call these), so a limit is
-- checked with the player's wallet locked and fifty concurrent purchases cannot pass it by one.
--
-- Rolling windows are read from the rows the operations write anyway (purchases for spending,
-- the ledger's grant entries for earning and minting, refunded purchases for refunds), through
-- the indexes of migration 0008: a window is exact to the microsecond, nothing extra is written
-- on the hot path, "the ledger agrees" holds by construction, and the moment a window frees up
-- (retry_at) is read from the very rows that fill it. A counter table would need buckets (so
-- approximate windows) and a write per operation on a row every purchase of the player locks.
--
-- A refusal is the final 409 limit_exceeded (sk_fail, stored with the key): its effects roll
-- back with the operation's block, so the operation's exception handler records it afterwards
-- with sk_risk_refused. A frozen player gets 403 account_frozen from sk_risk_admit before the
-- key is claimed: nothing is stored with the key (the contract's NOT_STORED category), so the
-- same request runs once the player is unfrozen; the refusal itself is recorded.
--
-- Every decision is recorded by sk_risk_record (a player's: risk_events) or sk_risk_log_breaker
-- (a mint breaker's: risk_breaker_log), which also emit it through the events outbox in the
-- same transaction (sk_emit_event, 70_events.sql), its data in the shape the API shows the
-- record in. A replayed refusal runs neither, so it is recorded and emitted once.

-- The policy of a published version (NULL: no limits).
CREATE OR REPLACE FUNCTION sk_risk_policy(p_version_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT risk FROM catalog_versions WHERE id = p_version_id
$$;

-- The limits of one list of the policy (spend_limits, earn_limits, ...) for a currency.
CREATE OR REPLACE FUNCTION sk_risk_rules(p_policy jsonb, p_list text, p_currency text)
RETURNS SETOF jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT e FROM jsonb_array_elements(coalesce(p_policy -> p_list, '[]')) WITH ORDINALITY AS r(e, n)
     WHERE p_currency IS NULL OR e ->> 'currency' = p_currency
     ORDER BY n
$$;

-- A decision about a player as GET /v1/players/{id}/risk shows it (store/risk.py reads them
-- through this) and as its event's data.
CREATE OR REPLACE FUNCTION sk_risk_event_json(e risk_events) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', e.id, 'kind', e.kind, 'operation', e.operation,
                              'code', e.code, 'rule', e.rule, 'details', e.details,
                              'author', e.author, 'reason', e.reason,
                              'created_at', sk_ts(e.created_at))
$$;

-- Records a decision about a player (kind: refused, frozen, unfrozen, tier_changed) and emits
-- it. A frozen player's refused attempts (account_frozen) are recorded but not emitted: they
-- are not stored with a key, so a client retrying would write an event per retry, and the
-- decision behind them, the freeze, was emitted when it was made.
CREATE OR REPLACE FUNCTION sk_risk_record(
    p_game text, p_player text, p_kind text, p_operation text, p_code text, p_rule text,
    p_details jsonb, p_author text, p_reason text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_event risk_events;
    v_type text;
BEGIN
    INSERT INTO risk_events (game_id, player_id, kind, operation, code, rule, details, author,
                             reason)
    VALUES (p_game, p_player, p_kind, p_operation, p_code, p_rule, coalesce(p_details, '{}'),
            p_author, p_reason)
    RETURNING * INTO v_event;
    v_type := CASE
        WHEN p_kind = 'frozen' THEN 'risk.player_frozen'
        WHEN p_kind = 'unfrozen' THEN 'risk.player_unfrozen'
        WHEN p_kind = 'tier_changed' THEN 'risk.tier_changed'
        WHEN p_code = 'limit_exceeded' THEN 'risk.limit_exceeded'
    END;
    IF v_type IS NOT NULL THEN
        PERFORM sk_emit_event(p_game, v_type, p_player, sk_risk_event_json(v_event));
    END IF;
END $$;

-- A trip or reset of a mint breaker as GET /v1/admin/risk/breakers lists it, and as its
-- event's data.
CREATE OR REPLACE FUNCTION sk_risk_breaker_log_json(l risk_breaker_log) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('currency', l.currency, 'kind', l.kind, 'author', l.author,
                              'reason', l.reason, 'details', l.details,
                              'created_at', sk_ts(l.created_at))
$$;

-- Records a trip (p_player: whose grant tripped it) or a reset (by p_author, with p_reason) of
-- a breaker, and emits it.
CREATE OR REPLACE FUNCTION sk_risk_log_breaker(
    p_game text, p_currency text, p_kind text, p_player text, p_author text, p_reason text,
    p_details jsonb
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_entry risk_breaker_log;
BEGIN
    INSERT INTO risk_breaker_log (game_id, currency, kind, author, reason, details)
    VALUES (p_game, p_currency, p_kind, p_author, p_reason, p_details)
    RETURNING * INTO v_entry;
    PERFORM sk_emit_event(p_game,
                          CASE p_kind WHEN 'tripped' THEN 'risk.breaker_tripped'
                                      WHEN 'reset' THEN 'risk.breaker_reset' END,
                          p_player, sk_risk_breaker_log_json(v_entry));
END $$;

-- Before an operation claims its key: notes the player as seen and answers 403 account_frozen
-- for a frozen one (status NULL: go on). A key that already has an outcome is left to the
-- operation, which replays it: a purchase made before the freeze stays what it was.
CREATE OR REPLACE FUNCTION sk_risk_admit(
    p_game text, p_player text, p_subject text, p_key text, p_operation text,
    p_request_id text, OUT status integer, OUT body text
) LANGUAGE plpgsql AS $$
DECLARE
    v_frozen_at timestamptz;
BEGIN
    SELECT pp.frozen_at INTO v_frozen_at FROM player_profiles pp
     WHERE pp.game_id = p_game AND pp.player_id = p_player;
    IF NOT FOUND THEN
        PERFORM sk_player_seen(p_game, p_player, NULL);
        RETURN;
    END IF;
    -- A live key only, as sk_idempotency_begin looks them up (an expired key counts as new).
    IF v_frozen_at IS NULL OR EXISTS (
        SELECT FROM idempotency_keys k
         WHERE k.game_id = p_game AND k.subject = p_subject AND k.key = p_key
           AND k.expires_at > now()) THEN
        RETURN;
    END IF;
    PERFORM sk_risk_record(p_game, p_player, 'refused', p_operation, 'account_frozen', NULL,
                           jsonb_build_object('frozen_at', sk_ts(v_frozen_at)), NULL, NULL);
    status := 403;
    body := sk_error_body('account_frozen', 'this account is frozen', '{}', p_request_id);
END $$;

-- How every keyed operation on a player's money and items begins (a purchase, a consume, a
-- grant, a hold, a promo code or receipt redemption; a refund, which a freeze does not stop,
-- claims its key alone): sk_risk_admit for p_operation, then the claim of the key of p_subject
-- (the player, or the service that grants). A status that is not NULL is the answer: 403
-- account_frozen (replayed false, nothing stored), or the key's stored outcome (replayed
-- true). NULL: the key is claimed, go on.
--
-- Its callers take it as an assignment, `v := sk_operation_start(...)`, as it takes its own
-- two: PL/pgSQL evaluates a lone call as a simple expression, where `SELECT ... INTO ...
-- FROM f(...)` runs a query around the call (a few µs a call in a loop of lone calls; too
-- little to show in a whole purchase, docs/benchmarks.md).
CREATE OR REPLACE FUNCTION sk_operation_start(
    p_game text, p_player text, p_subject text, p_key text, p_fingerprint text,
    p_ttl_seconds integer, p_wait_ms integer, p_operation text, p_request_id text,
    OUT status integer, OUT body text, OUT replayed boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_step record;
BEGIN
    v_step := sk_risk_admit(p_game, p_player, p_subject, p_key, p_operation, p_request_id);
    status := v_step.status;
    body := v_step.body;
    replayed := false;
    IF status IS NOT NULL THEN
        RETURN;
    END IF;
    v_step := sk_idempotency_begin(p_game, p_subject, p_key, p_fingerprint, p_ttl_seconds,
                                   p_wait_ms);
    status := v_step.status;
    body := v_step.body;
    replayed := status IS NOT NULL;
END $$;

-- Raises limit_exceeded with the details every limit gives (docs/api.md, "Risk").
CREATE OR REPLACE FUNCTION sk_risk_limit_exceeded(
    p_message text, p_rule text, p_currency text, p_window_seconds integer, p_measure text,
    p_limit bigint, p_used bigint, p_retry_at timestamptz, p_more jsonb DEFAULT '{}'
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sk_fail('limit_exceeded', p_message,
        jsonb_build_object('rule', p_rule, 'currency', p_currency,
                           'window_seconds', p_window_seconds, 'measure', p_measure,
                           'limit', p_limit, 'used', p_used, 'retry_at', sk_ts(p_retry_at))
        || p_more);
END $$;

-- The tier a player is in (NULL: none, no tier restriction) and when it leaves it by age
-- alone (NULL when history or the service keep it there). The service's choice wins: a tier
-- of the policy by name, or 'trusted' for none; a name the policy no longer has falls back to
-- placement. Otherwise the first tier of the list the player is still young or new enough for.
CREATE OR REPLACE FUNCTION sk_risk_tier(
    p_game text, p_player text, p_policy jsonb, OUT tier jsonb, OUT until timestamptz
) LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_player player_profiles;
    v_tier jsonb;
    v_young boolean;
    v_new boolean;
    v_purchases bigint;
BEGIN
    SELECT * INTO v_player FROM player_profiles pp
     WHERE pp.game_id = p_game AND pp.player_id = p_player;
    IF v_player.tier = 'trusted' THEN
        RETURN;
    END IF;
    SELECT e INTO tier FROM sk_risk_rules(p_policy, 'tiers', NULL) e
     WHERE e ->> 'name' = v_player.tier;
    IF tier IS NOT NULL THEN
        RETURN;
    END IF;
    FOR v_tier IN SELECT e FROM sk_risk_rules(p_policy, 'tiers', NULL) e LOOP
        v_young := (v_tier ->> 'while_younger_than_seconds') IS NOT NULL
            AND coalesce(v_player.first_seen, now())
                + make_interval(secs => (v_tier ->> 'while_younger_than_seconds')::integer) > now();
        v_new := false;
        IF (v_tier ->> 'while_fewer_purchases_than') IS NOT NULL THEN
            -- Counted up to the threshold only: a long history costs no more than a short one.
            SELECT count(*) INTO v_purchases FROM (
                SELECT FROM purchases p
                 WHERE p.game_id = p_game AND p.player_id = p_player AND p.status = 'completed'
                 LIMIT (v_tier ->> 'while_fewer_purchases_than')::bigint) s;
            v_new := v_purchases < (v_tier ->> 'while_fewer_purchases_than')::bigint;
        END IF;
        IF v_young OR v_new THEN
            tier := v_tier;
            IF NOT v_new THEN
                until := coalesce(v_player.first_seen, now())
                    + make_interval(secs => (v_tier ->> 'while_younger_than_seconds')::integer);
            END IF;
            RETURN;
        END IF;
    END LOOP;
END $$;

-- A purchase's trust tier and spend limits, with the buyer's wallet in p_currency locked (so
-- every earlier purchase of this player in this currency is committed and counted). Spending
-- counts every purchase made in the window, refunded or not: a refund returns money, not the
-- attempt.
CREATE OR REPLACE FUNCTION sk_risk_check_purchase(
    p_game text, p_player text, p_version_id bigint, p_item catalog_items,
    p_currency text, p_total bigint
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_policy jsonb := sk_risk_policy(p_version_id);
    v_tier jsonb;
    v_until timestamptz;
    v_max bigint;
    v_limit jsonb;
    v_window integer;
    v_since timestamptz;
    v_count bigint;
    v_amount bigint;
    v_retry timestamptz;
BEGIN
    IF v_policy IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_array_length(coalesce(v_policy -> 'tiers', '[]')) > 0 THEN
        SELECT t.tier, t.until INTO v_tier, v_until FROM sk_risk_tier(p_game, p_player, v_policy) t;
    END IF;
    IF v_tier IS NOT NULL THEN
        IF p_item.stock IS NOT NULL
           AND NOT coalesce((v_tier ->> 'limited_items')::boolean, true) THEN
            PERFORM sk_risk_limit_exceeded(
                format('players of the %s tier may not buy limited items such as %s',
                       v_tier ->> 'name', p_item.sku),
                'tier', NULL, NULL, NULL, NULL, NULL, v_until,
                jsonb_build_object('tier', v_tier ->> 'name', 'sku', p_item.sku));
        END IF;
        SELECT (e ->> 'amount')::bigint INTO v_max
          FROM jsonb_array_elements(coalesce(v_tier -> 'max_price', '[]')) e
         WHERE e ->> 'currency' = p_currency;
        IF p_total > v_max THEN
            PERFORM sk_risk_limit_exceeded(
                format('players of the %s tier may not spend more than %s %s at once',
                       v_tier ->> 'name', v_max, p_currency),
                'tier', p_currency, NULL, 'amount', v_max, p_total, v_until,
                jsonb_build_object('tier', v_tier ->> 'name', 'sku', p_item.sku));
        END IF;
    END IF;
    FOR v_limit IN SELECT sk_risk_rules(v_policy, 'spend_limits', p_currency) LOOP
        v_window := (v_limit ->> 'window_seconds')::integer;
        v_since := now() - make_interval(secs => v_window);
        SELECT count(*), coalesce(sum(p.total_price), 0) INTO v_count, v_amount
          FROM purchases p
         WHERE p.game_id = p_game AND p.player_id = p_player AND p.currency = p_currency
           AND p.created_at > v_since;
        IF v_count + 1 > (v_limit ->> 'max_count')::bigint THEN
            -- Free once the oldest purchases that are one too many have left the window.
            SELECT p.created_at + make_interval(secs => v_window) INTO v_retry
              FROM purchases p
             WHERE p.game_id = p_game AND p.player_id = p_player AND p.currency = p_currency
               AND p.created_at > v_since
             ORDER BY p.created_at, p.seq OFFSET v_count - (v_limit ->> 'max_count')::bigint
             LIMIT 1;
            PERFORM sk_risk_limit_exceeded(
                format('at most %s purchases in %s every %s seconds',
                       v_limit ->> 'max_count', p_currency, v_window),
                'spend_limit', p_currency, v_window, 'count',
                (v_limit ->> 'max_count')::bigint, v_count, v_retry);
        END IF;
        IF v_amount + p_total > (v_limit ->> 'max_amount')::bigint THEN
            v_retry := NULL;
            IF p_total <= (v_limit ->> 'max_amount')::bigint THEN
                SELECT s.created_at + make_interval(secs => v_window) INTO v_retry FROM (
                    SELECT p.created_at, p.seq,
                           sum(p.total_price) OVER (ORDER BY p.created_at, p.seq) AS freed
                      FROM purchases p
                     WHERE p.game_id = p_game AND p.player_id = p_player
                       AND p.currency = p_currency AND p.created_at > v_since) s
                 WHERE s.freed >= v_amount + p_total - (v_limit ->> 'max_amount')::bigint
                 ORDER BY s.created_at, s.seq LIMIT 1;
            END IF;
            PERFORM sk_risk_limit_exceeded(
                format('at most %s %s (minor units) spent every %s seconds',
                       v_limit ->> 'max_amount', p_currency, v_window),
                'spend_limit', p_currency, v_window, 'amount',
                (v_limit ->> 'max_amount')::bigint, v_amount, v_retry);
        END IF;
    END LOOP;
END $$;

-- A grant's earn limits and mint breakers, after its effects (p_granted: what it gave, bundles
-- included), with the player's wallets locked. The window sums include this grant's own ledger
-- entries; `used` in a refusal is what the window held before it.
CREATE OR REPLACE FUNCTION sk_risk_check_grant(
    p_game text, p_player text, p_version_id bigint, p_granted jsonb
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_policy jsonb := sk_risk_policy(p_version_id);
    g record;
    v_limit jsonb;
    v_window integer;
    v_since timestamptz;
    v_count bigint;
    v_amount bigint;
    v_retry timestamptz;
    v_breaker risk_breakers;
BEGIN
    IF v_policy IS NULL THEN
        RETURN;
    END IF;
    FOR g IN SELECT e ->> 'currency' AS currency, sum((e ->> 'amount')::bigint)::bigint AS amount,
                    count(*) AS entries
               FROM jsonb_array_elements(p_granted) e WHERE e ? 'currency'
              GROUP BY 1 ORDER BY 1 LOOP
        FOR v_limit IN SELECT sk_risk_rules(v_policy, 'earn_limits', g.currency) LOOP
            v_window := (v_limit ->> 'window_seconds')::integer;
            v_since := now() - make_interval(secs => v_window);
            SELECT count(*), coalesce(sum(l.delta), 0) INTO v_count, v_amount
              FROM ledger_entries l
             WHERE l.game_id = p_game AND l.player_id = p_player AND l.currency = g.currency
               AND l.kind = 'grant' AND l.created_at > v_since;
            IF v_count > (v_limit ->> 'max_count')::bigint THEN
                -- Free once the earlier grants that are too many have left the window; never,
                -- when this grant alone is more than the limit allows.
                v_retry := NULL;
                IF g.entries <= (v_limit ->> 'max_count')::bigint THEN
                    SELECT l.created_at + make_interval(secs => v_window) INTO v_retry
                      FROM ledger_entries l
                     WHERE l.game_id = p_game AND l.player_id = p_player
                       AND l.currency = g.currency AND l.kind = 'grant'
                       AND l.created_at > v_since
                     ORDER BY l.created_at, l.id
                    OFFSET v_count - (v_limit ->> 'max_count')::bigint - 1 LIMIT 1;
                END IF;
                PERFORM sk_risk_limit_exceeded(
                    format('at most %s grants of %s every %s seconds',
                           v_limit ->> 'max_count', g.currency, v_window),
                    'earn_limit', g.currency, v_window, 'count',
                    (v_limit ->> 'max_count')::bigint, v_count - g.entries, v_retry);
            END IF;
            IF v_amount > (v_limit ->> 'max_amount')::bigint THEN
                v_retry := NULL;
                IF g.amount <= (v_limit ->> 'max_amount')::bigint THEN
                    SELECT s.created_at + make_interval(secs => v_window) INTO v_retry FROM (
                        SELECT l.created_at, l.id,
                               sum(l.delta) OVER (ORDER BY l.created_at, l.id) AS freed
                          FROM ledger_entries l
                         WHERE l.game_id = p_game AND l.player_id = p_player
                           AND l.currency = g.currency AND l.kind = 'grant'
                           AND l.created_at > v_since) s
                     WHERE s.freed >= v_amount - (v_limit ->> 'max_amount')::bigint
                     ORDER BY s.created_at, s.id LIMIT 1;
                END IF;
                PERFORM sk_risk_limit_exceeded(
                    format('at most %s %s (minor units) granted every %s seconds',
                           v_limit ->> 'max_amount', g.currency, v_window),
                    'earn_limit', g.currency, v_window, 'amount',
                    (v_limit ->> 'max_amount')::bigint, v_amount - g.amount, v_retry);
            END IF;
        END LOOP;
        FOR v_limit IN SELECT sk_risk_rules(v_policy, 'mint_breakers', g.currency) LOOP
            -- The breaker's row serializes this currency's grants for the whole game, after
            -- the wallets (the lock order of every grant), so the threshold is exact.
            INSERT INTO risk_breakers (game_id, currency) VALUES (p_game, g.currency)
            ON CONFLICT DO NOTHING;
            SELECT * INTO v_breaker FROM risk_breakers b
             WHERE b.game_id = p_game AND b.currency = g.currency FOR UPDATE;
            v_window := (v_limit ->> 'window_seconds')::integer;
            IF v_breaker.tripped_at IS NOT NULL THEN
                PERFORM sk_risk_limit_exceeded(
                    format('minting %s is stopped until a studio member resets its breaker',
                           g.currency),
                    'mint_breaker', g.currency, v_window, 'amount',
                    (v_limit ->> 'max_amount')::bigint, NULL, NULL,
                    jsonb_build_object('tripped_at', sk_ts(v_breaker.tripped_at)));
            END IF;
            -- A reset starts the count afresh: what was minted before it was looked at.
            v_since := greatest(now() - make_interval(secs => v_window), v_breaker.reset_at);
            SELECT coalesce(sum(l.delta), 0) INTO v_amount FROM ledger_entries l
             WHERE l.game_id = p_game AND l.currency = g.currency AND l.kind = 'grant'
               AND l.created_at > v_since;
            IF v_amount > (v_limit ->> 'max_amount')::bigint THEN
                -- sk_risk_refused trips the breaker once this grant is rolled back.
                PERFORM sk_risk_limit_exceeded(
                    format('this grant would mint more than %s %s (minor units) in %s seconds;'
                           ' minting %s is stopped until a studio member resets its breaker',
                           v_limit ->> 'max_amount', g.currency, v_window, g.currency),
                    'mint_breaker', g.currency, v_window, 'amount',
                    (v_limit ->> 'max_amount')::bigint, v_amount - g.amount, NULL,
                    jsonb_build_object('tripped_at', sk_ts(now()), 'trips', true));
            END IF;
        END LOOP;
    END LOOP;
END $$;

-- A refund's cooldown, with the player's wallets locked: refunds of this player's purchases
-- in the window.
CREATE OR REPLACE FUNCTION sk_risk_check_refund(p_game text, p_player text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_policy jsonb := sk_risk_policy((SELECT live_version_id FROM games WHERE id = p_game));
    v_limit jsonb;
    v_window integer;
    v_since timestamptz;
    v_count bigint;
    v_retry timestamptz;
BEGIN
    FOR v_limit IN SELECT sk_risk_rules(v_policy, 'refund_limits', NULL) LOOP
        v_window := (v_limit ->> 'window_seconds')::integer;
        v_since := now() - make_interval(secs => v_window);
        SELECT count(*) INTO v_count FROM purchases p
         WHERE p.game_id = p_game AND p.player_id = p_player AND p.refunded_at > v_since;
        IF v_count + 1 > (v_limit ->> 'max_count')::bigint THEN
            SELECT p.refunded_at + make_interval(secs => v_window) INTO v_retry FROM purchases p
             WHERE p.game_id = p_game AND p.player_id = p_player AND p.refunded_at > v_since
             ORDER BY p.refunded_at, p.seq OFFSET v_count - (v_limit ->> 'max_count')::bigint
             LIMIT 1;
            PERFORM sk_risk_limit_exceeded(
                format('at most %s refunds every %s seconds for one player',
                       v_limit ->> 'max_count', v_window),
                'refund_limit', NULL, v_window, 'count', (v_limit ->> 'max_count')::bigint,
                v_count, v_retry);
        END IF;
    END LOOP;
END $$;

-- Called by an operation's handler of final rejections, after its block rolled back: records
-- (and emits) a limit_exceeded refusal, and trips the breaker a grant found past its threshold
-- (recorded and emitted too).
CREATE OR REPLACE FUNCTION sk_risk_refused(
    p_game text, p_player text, p_operation text, p_code text, p_details text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_details jsonb;
BEGIN
    IF p_code <> 'limit_exceeded' THEN
        RETURN;
    END IF;
    v_details := p_details::jsonb;
    PERFORM sk_risk_record(p_game, p_player, 'refused', p_operation, p_code,
                           v_details ->> 'rule', v_details, NULL, NULL);
    IF v_details ->> 'rule' = 'mint_breaker' AND (v_details ->> 'trips')::boolean THEN
        -- Inserted if missing: the row sk_risk_check_grant made went with the grant's block
        -- when this grant was the currency's first (one grant alone past the threshold).
        INSERT INTO risk_breakers AS b (game_id, currency, tripped_at)
        VALUES (p_game, v_details ->> 'currency', now())
        ON CONFLICT (game_id, currency) DO UPDATE SET tripped_at = now()
         WHERE b.tripped_at IS NULL;
        IF FOUND THEN
            PERFORM sk_risk_log_breaker(p_game, v_details ->> 'currency', 'tripped', p_player,
                NULL, NULL,
                jsonb_build_object('player_id', p_player, 'limit', v_details -> 'limit',
                                   'used', v_details -> 'used',
                                   'window_seconds', v_details -> 'window_seconds'));
        END IF;
    END IF;
END $$;
