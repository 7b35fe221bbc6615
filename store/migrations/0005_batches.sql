-- Batches: many executions started together under a per-batch concurrency. The writer keeps
-- each batch's counts and status current as its executions change, so lists need no scan.
CREATE TABLE batches (
    id          TEXT PRIMARY KEY,
    source_type TEXT NOT NULL,               -- workflows, files or folder
    folder_path TEXT,
    concurrency INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    status      TEXT NOT NULL,               -- running, completed, failed, cancelled
    stopped     INTEGER NOT NULL DEFAULT 0,  -- batch.stop or stopAll reached it
    completed   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    running     INTEGER NOT NULL DEFAULT 0,  -- running or paused
    queued      INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    ended_at    TEXT
);
CREATE INDEX batches_newest ON batches (created_at);
CREATE INDEX batches_by_status ON batches (status, created_at);

CREATE TABLE batch_items (
    batch_id      TEXT NOT NULL,
    position      INTEGER NOT NULL,
    execution_id  TEXT NOT NULL,
    blueprint_id  TEXT,
    workflow_path TEXT,  -- relative to the blueprints folder, for file and folder sources
    PRIMARY KEY (batch_id, position)
) WITHOUT ROWID;
