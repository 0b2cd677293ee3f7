-- Webhooks: a game's endpoints, how far each has been delivered, and the log of every attempt.
-- Events are read from the outbox (events, positioned by their per-game `id`); an endpoint is
-- delivered in that order, one process at a time (its progress row is claimed FOR UPDATE SKIP
-- LOCKED by store/webhooks.py).

CREATE TABLE webhook_endpoints (
    game_id         text NOT NULL REFERENCES games (id),
    id              uuid NOT NULL,
    url             text NOT NULL,
    -- Event types delivered; empty means every type.
    types           text[] NOT NULL DEFAULT '{}',
    description     text NOT NULL DEFAULT '',
    enabled         boolean NOT NULL DEFAULT true,
    -- Why the store (or the studio) disabled it, shown on the studio page and in the API.
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The signing keys (raw bytes): the store must sign with them, so they are kept as they are.
    -- After a rotation the previous key signs as well until previous_secret_expires_at.
    secret          bytea NOT NULL CHECK (octet_length(secret) >= 24),
    previous_secret bytea,
    previous_secret_expires_at timestamptz,
    PRIMARY KEY (game_id, id),
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);

-- One row per endpoint: the last event id delivered (every positioned event up to it that the
-- endpoint's types select has been answered 2xx), and the retry state of the next one.
CREATE TABLE webhook_progress (
    game_id           text NOT NULL,
    webhook_id        uuid NOT NULL,
    delivered_through bigint NOT NULL DEFAULT 0,
    -- Attempts of the event after delivered_through that have failed so far.
    failed_attempts   integer NOT NULL DEFAULT 0,
    -- When the current run of failures began: past the give-up horizon the endpoint is disabled.
    failing_since     timestamptz,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, webhook_id),
    FOREIGN KEY (game_id, webhook_id) REFERENCES webhook_endpoints (game_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_progress_due ON webhook_progress (next_attempt_at);

-- "Send again": events already delivered that the studio asked to be sent once more. They go
-- out before the endpoint's next new event, in event order.
CREATE TABLE webhook_resends (
    game_id    text NOT NULL,
    webhook_id uuid NOT NULL,
    event_id   bigint NOT NULL,
    PRIMARY KEY (game_id, webhook_id, event_id),
    FOREIGN KEY (game_id, webhook_id) REFERENCES webhook_endpoints (game_id, id) ON DELETE CASCADE
);

-- Every attempt: which event, its number, what came back and how long it took.
CREATE TABLE webhook_deliveries (
    game_id          text NOT NULL,
    webhook_id       uuid NOT NULL,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    event_id         bigint NOT NULL,
    attempt          integer NOT NULL CHECK (attempt >= 1),
    status_code      integer,
    latency_ms       integer NOT NULL CHECK (latency_ms >= 0),
    response_excerpt text NOT NULL DEFAULT '' CHECK (char_length(response_excerpt) <= 1000),
    error            text,
    attempted_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, webhook_id, id),
    FOREIGN KEY (game_id, webhook_id) REFERENCES webhook_endpoints (game_id, id) ON DELETE CASCADE
);
