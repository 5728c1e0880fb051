-- The operator console's charts and "delivered in the last 24 h" count attempts
-- by time (journal::attemptActivity): without this index every overview would
-- read the whole attempts table.
CREATE INDEX attempts_started_at ON attempts (started_at);
