-- Facts about the file as a whole. `cleared` counts batch.clearAll runs, so every server
-- sharing the file learns that history it may have cached was deleted.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('cleared', 0);
