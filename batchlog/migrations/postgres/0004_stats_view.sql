-- The stats view: one row per execution with its measured batch time once it finished.
CREATE TABLE stats_batches (
    execution_id TEXT PRIMARY KEY,
    queue_name TEXT NOT NULL,
    item_id TEXT NOT NULL,
    analysis_id TEXT,
    runner_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    model TEXT,
    num_steps INTEGER,
    width INTEGER,
    height INTEGER,
    frames INTEGER,
    batch_size INTEGER NOT NULL,
    controls TEXT NOT NULL,
    controls_computed INTEGER NOT NULL,
    state TEXT NOT NULL,
    seconds DOUBLE PRECISION,
    peak_memory_bytes BIGINT,
    succeeded INTEGER,
    failed INTEGER,
    started_position BIGINT NOT NULL,
    finished_at TEXT,
    finished_position BIGINT
);
CREATE INDEX stats_batches_finished_idx ON stats_batches (finished_position);

CREATE TABLE stats_batch_jobs (
    item_id TEXT PRIMARY KEY,
    analysis_id TEXT NOT NULL
);
