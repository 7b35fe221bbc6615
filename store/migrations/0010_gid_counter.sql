-- Log numbers (gid) come from a counter rather than max(gid) + 1, so they never go back when
-- batch.clearAll deletes the newest rows: a follower's position, or a subscriber's event id,
-- must never name a different row later.
INSERT INTO meta (key, value) VALUES ('last_gid', (SELECT coalesce(max(gid), 0) FROM logs));
