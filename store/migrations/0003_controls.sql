-- Control commands: recorded before anything acts on them, applied in id order by the engine
-- running the execution; the outcome is written with the effects it had.
CREATE TABLE controls (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    command      BLOB NOT NULL,  -- engine.control.AnyCommand
    created_at   TEXT NOT NULL,
    outcome      BLOB,           -- engine.control.Outcome, NULL until applied
    applied_at   TEXT
);
CREATE INDEX controls_pending ON controls (id) WHERE outcome IS NULL;
