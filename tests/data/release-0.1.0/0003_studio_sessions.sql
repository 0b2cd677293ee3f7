-- Sessions of the studio web page (/studio). The cookie holds a random id; only its sha256 is
-- stored, so a copy of this table cannot be replayed as cookies. Each session has its own CSRF
-- token, put in every form of the page and checked on every POST.
CREATE TABLE studio_sessions (
    id_hash      text PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
    game_id      text NOT NULL REFERENCES games (id),
    subject      text NOT NULL,
    csrf_token   text NOT NULL,
    -- A one-time message for the next page ("Published version 4"): shown once, then cleared.
    flash        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Never later than the expiry of the token the session was opened with.
    expires_at   timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX studio_sessions_expiry ON studio_sessions (expires_at);
