-- An idempotency key names the execution it created for 24 hours. Claims go through this
-- table inside the writer's transaction, so two requests with one key cannot both create.
DROP INDEX executions_by_idempotency_key;
CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    fingerprint  BLOB NOT NULL,    -- sha256 of the request, without the key
    execution_id TEXT NOT NULL,
    created_at   INTEGER NOT NULL  -- epoch ms
) WITHOUT ROWID;
