-- API keys: only a hash of each key's secret is kept. A revoked key stays (revoked_at set), so
-- its name shows in `keys list`, and a server that once had keys never falls back to open mode.
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,  -- the public part of the key, to find its row
    name TEXT NOT NULL,
    secret_hash BLOB NOT NULL,    -- sha256 of the secret part
    scopes TEXT NOT NULL,         -- JSON array of scope names
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

-- Who started each execution (an API key's name), for the per-key limit of active executions.
ALTER TABLE executions ADD COLUMN started_by TEXT;
CREATE INDEX executions_by_starter ON executions (started_by, status) WHERE started_by IS NOT NULL;
