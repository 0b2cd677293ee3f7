-- The request rate limit shared by every server process and host (runtime/rate_limit.py): one
-- row per account and rule, the count of its current fixed window. UNLOGGED: a counter that
-- lives for seconds or minutes need not survive a crash nor reach the standby (after either,
-- every account starts a fresh window), and its updates write no WAL. No index but the key:
-- hits and window_end change on every request, and an update that touches no indexed column
-- stays a HOT update in the same page.
CREATE UNLOGGED TABLE rate_limit_windows (
    game_id    text NOT NULL,
    subject    text NOT NULL,
    rule       text NOT NULL,
    window_end timestamptz NOT NULL,
    hits       integer NOT NULL CHECK (hits >= 1),
    PRIMARY KEY (game_id, subject, rule)
);
