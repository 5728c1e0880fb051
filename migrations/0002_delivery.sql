-- The delivery engine's state: every attempt, the dead letters, and each
-- target's circuit. Times are ISO 8601 UTC text with milliseconds.

-- max_age counts from age_from: the receive time, or the last replay.
ALTER TABLE deliveries ADD COLUMN age_from TEXT;
UPDATE deliveries SET age_from = created_at;

-- What the dispatcher asks for: the due work of one target, oldest due first.
-- Partial, so delivered and dead rows (the bulk of the table) are not in it.
CREATE INDEX deliveries_ready ON deliveries (target, due_at, id)
  WHERE state IN ('pending', 'retry_wait');

CREATE TABLE attempts (
  id               INTEGER PRIMARY KEY,
  delivery_id      INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
  started_at       TEXT    NOT NULL,
  duration_ms      INTEGER NOT NULL,
  status           INTEGER,          -- HTTP status, NULL when none was received
  error            TEXT,             -- transport error or why the status was not accepted
  response_excerpt TEXT,             -- the first bytes of the response body
  outcome          TEXT    NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead', 'probe_failed')),
  request_headers  TEXT              -- JSON object of what was sent; configured header values masked
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);

-- Readable as it stands: `SELECT * FROM dead_letters ORDER BY died_at DESC`.
CREATE TABLE dead_letters (
  id           INTEGER PRIMARY KEY,
  delivery_id  INTEGER NOT NULL UNIQUE REFERENCES deliveries (id) ON DELETE CASCADE,
  batch_id     INTEGER NOT NULL,
  target       TEXT    NOT NULL,
  event_types  TEXT    NOT NULL,     -- comma-separated discriminators / actions
  attempts     INTEGER NOT NULL,
  last_status  INTEGER,
  last_error   TEXT,
  reason       TEXT    NOT NULL CHECK (reason IN ('rejected', 'max_attempts', 'max_age')),
  received_at  TEXT    NOT NULL,
  died_at      TEXT    NOT NULL
);
CREATE INDEX dead_letters_died_at ON dead_letters (died_at);
CREATE INDEX dead_letters_target ON dead_letters (target, died_at);

CREATE TABLE target_state (
  target               TEXT    PRIMARY KEY,
  circuit              TEXT    NOT NULL CHECK (circuit IN ('closed', 'open', 'half_open')),
  consecutive_failures INTEGER NOT NULL,
  last_error           TEXT,
  last_error_at        TEXT,
  last_success_at      TEXT,
  updated_at           TEXT    NOT NULL
) WITHOUT ROWID;
