-- A step's output had a table of its own, so each step that finished cost the writer a second
-- row, in a second B-tree, next to the steps row the same transition rewrites anyway: a fifth
-- of the writer's time in `make bench`. The output now travels in the steps row. `output` is
-- NULL until the step has one (a stored output is never NULL: JSON null is the text `null`).
ALTER TABLE steps ADD COLUMN is_leaf INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN output BLOB;
ALTER TABLE steps ADD COLUMN artifacts BLOB;
ALTER TABLE steps ADD COLUMN metrics BLOB;
ALTER TABLE steps ADD COLUMN links BLOB;
UPDATE steps
SET is_leaf = o.is_leaf, output = o.output, artifacts = o.artifacts, metrics = o.metrics,
    links = o.links
FROM step_outputs o
WHERE o.execution_id = steps.execution_id AND o.idx = steps.idx;
DROP TABLE step_outputs;
