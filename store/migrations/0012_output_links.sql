-- Outputs that hold another step's output (a noop passes its dependencies' on) store it by
-- reference: `links` lists where, so a chain of n nodes costs O(n) bytes, not O(n^2).
-- NULL for an output stored whole, as every output before this migration is.
ALTER TABLE step_outputs ADD COLUMN links BLOB;
