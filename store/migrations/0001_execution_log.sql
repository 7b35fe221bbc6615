-- The execution log. JSON documents are stored as BLOBs of UTF-8 JSON, encoded by msgspec,
-- so reads hand them to the wire without decoding.

CREATE TABLE blueprints (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    version     INTEGER NOT NULL,  -- the newest version
    node_count  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,     -- ISO 8601 UTC, sorts as time
    updated_at  TEXT NOT NULL
);
CREATE INDEX blueprints_newest ON blueprints (created_at DESC, id DESC);

CREATE TABLE blueprint_versions (
    blueprint_id TEXT NOT NULL REFERENCES blueprints (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    document     BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (blueprint_id, version)
) WITHOUT ROWID;

CREATE TABLE executions (
    id                TEXT NOT NULL UNIQUE,
    blueprint_id      TEXT,
    blueprint_version INTEGER,
    batch_id          TEXT,
    status            TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    ended_at          TEXT,
    retry_of          TEXT,
    idempotency_key   TEXT,
    request_hash      BLOB,
    snapshot          BLOB NOT NULL,  -- the blueprint as it ran
    input             BLOB NOT NULL,
    options           BLOB NOT NULL,
    record            BLOB NOT NULL   -- engine.records.Execution: the status without steps and logs
);
CREATE INDEX executions_newest ON executions (created_at DESC, id DESC);
CREATE INDEX executions_by_status ON executions (status, created_at DESC, id DESC);
CREATE INDEX executions_by_blueprint ON executions (blueprint_id, created_at DESC, id DESC);
CREATE INDEX executions_by_batch ON executions (batch_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX executions_by_idempotency_key ON executions (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE steps (
    execution_id TEXT NOT NULL,
    idx          INTEGER NOT NULL,  -- the node's position in the blueprint
    node_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    record       BLOB NOT NULL,     -- engine.records.Step
    PRIMARY KEY (execution_id, idx)
) WITHOUT ROWID;

-- Outputs apart from step records: status reads skip them, and they can be large.
CREATE TABLE step_outputs (
    execution_id TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    node_id      TEXT NOT NULL,
    is_leaf      INTEGER NOT NULL,
    output       BLOB NOT NULL,
    artifacts    BLOB NOT NULL,
    metrics      BLOB NOT NULL,
    PRIMARY KEY (execution_id, idx)
) WITHOUT ROWID;

CREATE TABLE logs (
    execution_id TEXT NOT NULL,
    seq          INTEGER NOT NULL,  -- per execution, from 1
    gid          INTEGER NOT NULL,  -- across all executions, for followers of everything
    level        INTEGER NOT NULL,  -- 0 trace .. 4 error, for minimum-level filters
    node_id      TEXT,
    entry        BLOB NOT NULL,     -- engine.records.LogEntry
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX logs_by_gid ON logs (gid);
