-- The history view keeps what its fold works out (actor, job ids, summary) and when each event
-- happened; the event itself (originator, topic, payload) is read from the log, which holds it.
-- Nothing is lost: every dropped column is a copy of what the event log stores. The table is
-- made again rather than altered (DROP COLUMN needs SQLite 3.35; a renamed table's stored
-- definition is quoted), its rows kept, in one transaction.
BEGIN IMMEDIATE;  -- the write lock first: a re-run reads before it writes
DROP INDEX IF EXISTS history_events_stream_idx;
CREATE TEMP TABLE history_events_kept AS
    SELECT position, sequence, recorded_at, event_type, actor, job_ids, summary
    FROM history_events;
DROP TABLE history_events;
CREATE TABLE history_events (
    position INTEGER PRIMARY KEY,
    sequence INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    event_type TEXT NOT NULL,
    actor TEXT NOT NULL,
    job_ids TEXT NOT NULL,
    summary TEXT NOT NULL
);
INSERT INTO history_events (position, sequence, recorded_at, event_type, actor, job_ids, summary)
    SELECT position, sequence, recorded_at, event_type, actor, job_ids, summary
    FROM history_events_kept;
DROP TABLE history_events_kept;
COMMIT;
