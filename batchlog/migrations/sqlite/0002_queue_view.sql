-- The queue view: queues, every item ever queued (nothing is deleted), executions, and
-- checkpoints of the in-memory state for time travel (queue_at).
CREATE TABLE queue_view_queues (
    queue_id TEXT PRIMARY KEY,
    queue_name TEXT NOT NULL UNIQUE,
    paused INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    latest_analysis_id TEXT,
    analysis_sequence INTEGER,
    updated_position INTEGER NOT NULL
);

CREATE TABLE queue_view_items (
    job_id TEXT PRIMARY KEY,
    queue_name TEXT NOT NULL,
    job_type TEXT NOT NULL,
    status TEXT NOT NULL,
    active INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    position_major INTEGER NOT NULL,
    position_minor INTEGER NOT NULL,
    runs TEXT NOT NULL,
    submitter TEXT NOT NULL,
    options TEXT NOT NULL,
    source_job_ids TEXT NOT NULL,
    analysis_id TEXT,
    merged_into TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    claimed_by TEXT,
    claim_token TEXT,
    claimed_at TEXT,
    lease_expires_at TEXT,
    not_before TEXT,
    execution_id TEXT,
    progress_done INTEGER NOT NULL,
    progress_failed INTEGER NOT NULL,
    progress_total INTEGER NOT NULL,
    outcome TEXT,
    added_position INTEGER NOT NULL,
    added_index INTEGER NOT NULL,
    claimed_position INTEGER,
    ended_position INTEGER,
    updated_position INTEGER NOT NULL
);
CREATE INDEX queue_view_items_active_idx ON queue_view_items (queue_name, active, status);
CREATE INDEX queue_view_items_ended_idx ON queue_view_items (queue_name, ended_position);

CREATE TABLE queue_view_executions (
    execution_id TEXT PRIMARY KEY,
    queue_name TEXT NOT NULL,
    item_id TEXT NOT NULL,
    claim_token TEXT NOT NULL,
    runner_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    lease_expires_at TEXT,
    done INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    total INTEGER NOT NULL,
    started_position INTEGER NOT NULL,
    updated_position INTEGER NOT NULL
);
CREATE INDEX queue_view_executions_state_idx ON queue_view_executions (state);

CREATE TABLE queue_view_checkpoints (
    queue_name TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (queue_name, sequence)
);
