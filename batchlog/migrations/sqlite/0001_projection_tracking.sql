-- Where each projection is in the log (one row per projection), its last error, and skips.
-- A view's row changes and its tracking row are written in one transaction; the update of the
-- tracking row is a compare-and-set on the previous position, so two hosts never apply an event twice.
CREATE TABLE projection_tracking (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL DEFAULT 0,
    error_position INTEGER,
    error_topic TEXT,
    error_message TEXT,
    error_at TEXT,
    updated_at TEXT
);
INSERT INTO projection_tracking (name, position) VALUES ('queue', 0), ('history', 0), ('stats', 0);

CREATE TABLE projection_skips (
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    topic TEXT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    skipped_at TEXT NOT NULL,
    PRIMARY KEY (name, position)
);
