"""Every SQL statement the store makes, by name."""

from __future__ import annotations

from typing import Any

INSERT_EXECUTION = """
INSERT INTO executions (id, blueprint_id, blueprint_version, batch_id, status, created_at,
    updated_at, ended_at, retry_of, idempotency_key, record, owner, started_by)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_EXECUTION_INPUTS = (
    "INSERT INTO execution_inputs (execution_id, snapshot, input, options) VALUES (?, ?, ?, ?)"
)
UPDATE_EXECUTION = (
    "UPDATE executions SET status = ?, updated_at = ?, ended_at = ?, record = ? WHERE id = ?"
)
INSERT_STEP = """
INSERT INTO steps (execution_id, idx, node_id, status, record, is_leaf, output, artifacts,
    metrics, links)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
UPDATE_STEP = "UPDATE steps SET status = ?, record = ? WHERE execution_id = ? AND idx = ?"
UPDATE_STEP_AND_OUTPUT = """
UPDATE steps SET status = ?, record = ?, is_leaf = ?, output = ?, artifacts = ?, metrics = ?,
    links = ?
WHERE execution_id = ? AND idx = ?
"""
INSERT_LOG = (
    "INSERT INTO logs (execution_id, seq, gid, level, node_id, entry) VALUES (?, ?, ?, ?, ?, ?)"
)
SET_CONTROL_OUTCOME = """
UPDATE controls SET outcome = ?, applied_at = ? WHERE id = ? AND outcome IS NULL
"""
INSERT_WEBHOOK = """
INSERT INTO webhook_deliveries (execution_id, event, url, secret, body, created_at, next_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
SET_END_GID = "UPDATE executions SET end_gid = ? WHERE id = ?"
LAST_GID = "SELECT value FROM meta WHERE key = 'last_gid'"
ADVANCE_GID = "UPDATE meta SET value = value + ? WHERE key = 'last_gid'"


def take_gids(conn: Any, count: int) -> int:
    """Reserve `count` log numbers; returns the one before the first. Inside the writer's
    transaction, which holds the write lock, so no one else can take them."""
    base: int = conn.execute(LAST_GID).fetchone()[0]
    conn.execute(ADVANCE_GID, (count,))
    return base


def newest_page(
    conn: Any, table: str, columns: str, where: str, args: tuple[Any, ...], limit: int, offset: int
) -> tuple[int, list[Any]]:
    """How many rows of `table` match `where`, and a page of them, newest first. `table`,
    `columns` and `where` are fixed text of the caller's; values travel in `args`."""
    total = conn.execute(f"SELECT count(*) FROM {table}{where}", args).fetchone()[0]
    rows = conn.execute(
        f"SELECT {columns} FROM {table}{where}"
        " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
        (*args, limit, offset),
    ).fetchall()
    return int(total), rows


# The status of one execution: each a single indexed lookup or range.
EXECUTION_RECORD = "SELECT record FROM executions WHERE id = ?"
STEP_RECORDS = "SELECT record FROM steps WHERE execution_id = ? ORDER BY idx"
NEWEST_LOGS = "SELECT seq, entry FROM logs WHERE execution_id = ? ORDER BY seq DESC LIMIT ?"
# A step's output columns are NULL until it has an output (store/migrations/0015).
FINAL_OUTPUTS = """
SELECT node_id, output, artifacts, idx, links FROM steps
WHERE execution_id = ? AND is_leaf = 1 AND output IS NOT NULL ORDER BY idx
"""
ALL_OUTPUTS = """
SELECT node_id, output, artifacts, metrics, idx, links FROM steps
WHERE execution_id = ? AND output IS NOT NULL ORDER BY idx
"""
#: Every output of an execution, as `store.outputs.StoredOutputs` takes them.
OUTPUT_ROWS = "SELECT idx, output, links FROM steps WHERE execution_id = ? AND output IS NOT NULL"
SUCCEEDED_ARTIFACTS = """
SELECT node_id, idx, artifacts FROM steps
WHERE execution_id = ? AND status = 'succeeded' AND output IS NOT NULL
"""
FINISHED_STATUS = "SELECT body FROM finished_statuses WHERE execution_id = ?"
LOCATE_FINISHED_STATUS = "SELECT rowid, body FROM finished_statuses WHERE execution_id = ?"
FINISHED_STATUS_AT = "SELECT execution_id, body FROM finished_statuses WHERE rowid = ?"
HAS_FINISHED_STATUS = "SELECT 1 FROM finished_statuses WHERE execution_id = ?"
STORE_FINISHED_STATUS = (
    "INSERT OR REPLACE INTO finished_statuses (execution_id, body) VALUES (?, ?)"
)
DROP_FINISHED_STATUS = "DELETE FROM finished_statuses WHERE execution_id = ?"
EXECUTION_EXISTS = "SELECT 1 FROM executions WHERE id = ?"

LOGS_AFTER = """
SELECT seq, entry FROM logs
WHERE execution_id = ?1 AND seq > ?2 AND level >= ?3 AND (?4 IS NULL OR node_id = ?4)
ORDER BY seq LIMIT ?5
"""

UNFINISHED_EXECUTIONS = """
SELECT e.id, e.record, i.snapshot, i.input, i.options
FROM executions e JOIN execution_inputs i ON i.execution_id = e.id
WHERE e.status IN ('queued', 'running', 'paused') AND (?1 IS NULL OR e.owner = ?1)
ORDER BY e.created_at, e.rowid
"""
#: An execution's record with what it was started with, to run it again.
RETRY_SOURCE = """
SELECT e.record, i.snapshot, i.input, i.options
FROM executions e JOIN execution_inputs i ON i.execution_id = e.id
WHERE e.id = ?
"""
STEPS_OF = "SELECT idx, record FROM steps WHERE execution_id = ? ORDER BY idx"
LAST_SEQ = "SELECT max(seq) FROM logs WHERE execution_id = ?"
ACTIVE_RECORDS = """
SELECT record FROM executions WHERE status IN ('queued', 'running', 'paused')
ORDER BY created_at DESC, rowid DESC
"""
COUNT_ACTIVE = """
SELECT status, count(*) FROM executions WHERE status IN ('queued', 'running', 'paused')
GROUP BY status
"""
