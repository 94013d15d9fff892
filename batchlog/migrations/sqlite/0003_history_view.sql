-- The history view: one row per event, and an index from job id to the events that touched it.
CREATE TABLE history_events (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    originator_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    event_type TEXT NOT NULL,
    actor TEXT NOT NULL,
    job_ids TEXT NOT NULL,
    summary TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX history_events_stream_idx ON history_events (stream, originator_id, sequence);

CREATE TABLE history_event_jobs (
    job_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (job_id, position)
);

CREATE TABLE history_executions (
    execution_id TEXT PRIMARY KEY,
    queue_name TEXT NOT NULL,
    item_id TEXT NOT NULL,
    runner_id TEXT NOT NULL,
    ended INTEGER NOT NULL
);
