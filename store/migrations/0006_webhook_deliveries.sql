-- Webhook deliveries: written with the status change that causes them, so none is lost to a
-- crash; each attempt updates its row until it is delivered or given up.
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    event        TEXT NOT NULL,  -- completed, failed, cancelled, paused
    url          TEXT NOT NULL,
    secret       TEXT,           -- kept to sign each attempt
    body         BLOB NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL DEFAULT 'pending',  -- pending, delivered, failed
    last_error   TEXT,
    next_at      INTEGER NOT NULL,  -- epoch ms of the next attempt
    created_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_at) WHERE status = 'pending';
