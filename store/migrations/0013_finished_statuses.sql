-- The status of each finished execution as getExecutionStatus returns it by default (the
-- newest 100 log lines, no include), stored in the transaction that finished it and rebuilt by
-- any later write to it (a webhook's log line). A status read is then one indexed lookup, not
-- four, however many executions the file holds. A missing row only means the long way.
CREATE TABLE finished_statuses (
    execution_id TEXT PRIMARY KEY,
    body         BLOB NOT NULL
);
