-- The events outbox: one row per effect (a purchase, a grant, a refund, a sell-out, a publish,
-- ...), inserted by the transaction that makes the effect (sk_emit_event, sql/70_events.sql),
-- so an event exists exactly when its effect committed.
--
-- `seq` is drawn at insert time, in no useful order across transactions: one that drew a lower
-- seq may commit later. The feed therefore reads `id`, the event's position: NULL when the row
-- is inserted, and set afterwards by the sequencer (sk_position_events), one process at a time,
-- only for rows already committed, in seq order, counting up per game from event_positions.
-- Positions only grow, and a row gets one only once it is visible, so a reader that has seen
-- position N never finds a new event below N: none is lost between two reads.
CREATE TABLE events (
    game_id    text NOT NULL REFERENCES games (id),
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    id         bigint CHECK (id >= 1),
    type       text NOT NULL CHECK (type ~ '^[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*$'),
    player_id  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    data       jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    PRIMARY KEY (game_id, seq)
);
-- The feed: WHERE game_id = $1 AND id > $cursor ORDER BY id.
CREATE UNIQUE INDEX events_by_position ON events (game_id, id) WHERE id IS NOT NULL;
-- The sequencer's work list: the rows still waiting for a position (a small index).
CREATE INDEX events_unpositioned ON events (seq) WHERE id IS NULL;
-- Retention: the purge deletes positioned rows older than SHOPKEEP_EVENT_RETENTION.
CREATE INDEX events_by_age ON events (created_at) WHERE id IS NOT NULL;

-- The last position given out per game.
CREATE TABLE event_positions (
    game_id text PRIMARY KEY REFERENCES games (id),
    last_id bigint NOT NULL CHECK (last_id >= 0)
);

-- An event is written once: the sequencer may give it its position (NULL to a number, once),
-- nothing may change what it says.
CREATE FUNCTION sk_event_written_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.id IS NOT NULL OR NEW.id IS NULL
       OR (NEW.game_id, NEW.seq, NEW.type, NEW.player_id, NEW.created_at, NEW.data)
          IS DISTINCT FROM (OLD.game_id, OLD.seq, OLD.type, OLD.player_id, OLD.created_at,
                            OLD.data) THEN
        RAISE EXCEPTION 'events are written once: only a missing position may be set'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER events_written_once BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION sk_event_written_once();
