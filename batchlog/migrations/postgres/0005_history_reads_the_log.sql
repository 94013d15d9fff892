-- The history view keeps what its fold works out (actor, job ids, summary) and when each event
-- happened; the event itself (originator, topic, payload) is read from the log, which holds it.
-- Nothing is lost: every dropped column is a copy of what the event log stores.
DROP INDEX IF EXISTS history_events_stream_idx;
ALTER TABLE history_events
    DROP COLUMN IF EXISTS stream,
    DROP COLUMN IF EXISTS originator_id,
    DROP COLUMN IF EXISTS topic,
    DROP COLUMN IF EXISTS payload;
