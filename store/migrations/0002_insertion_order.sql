-- Newest first breaks ties by insertion order (rowid), not by the random end of an id:
-- two executions or blueprints can share a millisecond.
DROP INDEX executions_newest;
DROP INDEX executions_by_status;
DROP INDEX executions_by_blueprint;
DROP INDEX executions_by_batch;
DROP INDEX blueprints_newest;
CREATE INDEX executions_newest ON executions (created_at);
CREATE INDEX executions_by_status ON executions (status, created_at);
CREATE INDEX executions_by_blueprint ON executions (blueprint_id, created_at);
CREATE INDEX executions_by_batch ON executions (batch_id, created_at);
CREATE INDEX blueprints_newest ON blueprints (created_at);
