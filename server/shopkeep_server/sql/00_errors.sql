-- How the money functions fail. Every rejection goes through one of these three helpers, so
-- every error code the SQL can raise is a literal argument of sk_fail, sk_not_found or
-- sk_invalid (a test reads these files and checks each code against the error table).
--
-- SQLSTATE SKB01 is a final business rejection (HTTP 409, stored with the idempotency key),
-- SKN01 is "not found" and SKV01 a validation failure (HTTP 404 / 422, never stored); the
-- idempotency functions raise SKV02 (key reused) and SKI01 (key in use). MESSAGE carries the
-- API's error code, HINT the human message, DETAIL a JSON object.

-- A time as the API writes it. STABLE, as to_char is in PostgreSQL's catalog: declared
-- IMMUTABLE, the planner would never inline it (nor a rendering function that calls it), and
-- each of a purchase's timestamps would be a function call of its own.
CREATE OR REPLACE FUNCTION sk_ts(ts timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE OR REPLACE FUNCTION sk_fail(p_code text, p_message text, p_details jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SKB01', MESSAGE = p_code, HINT = p_message,
        DETAIL = p_details::text;
END $$;

CREATE OR REPLACE FUNCTION sk_not_found(p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SKN01', MESSAGE = 'not_found', HINT = p_message,
        DETAIL = '{}';
END $$;

CREATE OR REPLACE FUNCTION sk_invalid(p_field text, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SKV01', MESSAGE = 'validation_failed',
        HINT = 'the request is not valid',
        DETAIL = jsonb_build_object(p_field, jsonb_build_array(p_message))::text;
END $$;
