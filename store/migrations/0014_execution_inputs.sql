-- What an execution was started with (the blueprint as it ran, its input and options) never
-- changes, and can be large: a 1,000-node blueprint is about 100 KB. Kept in the executions row,
-- it was written again, overflow page by overflow page, by every update of that row, once per
-- group of transitions. It now has a table of its own, written once.
CREATE TABLE execution_inputs (
    execution_id TEXT PRIMARY KEY,
    snapshot     BLOB NOT NULL,  -- the blueprint as it ran
    input        BLOB NOT NULL,
    options      BLOB NOT NULL
);
INSERT INTO execution_inputs (execution_id, snapshot, input, options)
    SELECT id, snapshot, input, options FROM executions;
ALTER TABLE executions DROP COLUMN snapshot;
ALTER TABLE executions DROP COLUMN input;
ALTER TABLE executions DROP COLUMN options;
