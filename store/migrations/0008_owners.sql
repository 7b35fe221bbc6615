-- Which engine runs each execution. Engines hold a lock file while they live; an execution
-- whose owner's lock is free (its process died) is claimed by a live engine and resumed.
ALTER TABLE executions ADD COLUMN owner TEXT;
CREATE INDEX executions_by_owner ON executions (owner, status);
