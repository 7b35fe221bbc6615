-- The log row that recorded each execution's end, so a subscriber resuming a finished batch's
-- stream knows which row is the batch's last, rather than ending at the first row it reads.
ALTER TABLE executions ADD COLUMN end_gid INTEGER;
