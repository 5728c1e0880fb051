-- The journal: every batch as received, its events, and one delivery row per
-- matching target, written in the transaction that precedes the 202.
-- Times are ISO 8601 UTC text with milliseconds (fixed width: text order is
-- time order), so the file reads as it stands in the sqlite3 shell.

CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- A random id for this journal file: prefixes every webhook-id so that ids stay
-- unique if a journal is ever recreated and batch ids start again at 1.
INSERT INTO meta (key, value) VALUES ('journal_id', lower(hex(randomblob(6))));

CREATE TABLE batches (
  id             INTEGER PRIMARY KEY,
  received_at    TEXT    NOT NULL,
  kind           TEXT    NOT NULL CHECK (kind IN ('general', 'integration', 'unknown')),
  enterprise_id  TEXT,
  integration_id TEXT,
  event_count    INTEGER NOT NULL,
  content_type   TEXT,
  body           BLOB    NOT NULL  -- the exact bytes received
);
CREATE INDEX batches_received_at ON batches (received_at);

CREATE TABLE events (
  batch_id      INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
  seq           INTEGER NOT NULL,  -- position in Events (0-based); 0 for an integration webhook
  discriminator TEXT    NOT NULL,  -- Events[].Discriminator, or Action
  entity_id     TEXT,              -- Events[].Value.Id, or Data.Integration.Id
  PRIMARY KEY (batch_id, seq)
) WITHOUT ROWID;

CREATE TABLE deliveries (
  id          INTEGER PRIMARY KEY,
  batch_id    INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
  event_seq   INTEGER,             -- event mode: the one event; NULL: the (filtered) batch
  target      TEXT    NOT NULL,
  state       TEXT    NOT NULL DEFAULT 'pending'
              CHECK (state IN ('pending', 'in_flight', 'retry_wait', 'delivered', 'dead')),
  attempts    INTEGER NOT NULL DEFAULT 0,
  created_at  TEXT    NOT NULL,
  due_at      TEXT    NOT NULL,    -- not to be attempted before this time
  updated_at  TEXT    NOT NULL,
  last_status INTEGER,             -- HTTP status of the last attempt
  last_error  TEXT
);
CREATE INDEX deliveries_queue ON deliveries (target, state, id);
CREATE INDEX deliveries_batch ON deliveries (batch_id);
