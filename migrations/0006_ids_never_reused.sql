-- mews-relay: foreign_keys off
-- Ids are never reused. Without AUTOINCREMENT SQLite gives a new row
-- max(id) + 1: after retention pruned every batch, the next batch was id 1
-- again, and went out as webhook-id msg_<journal>_1, which a consumer that
-- deduplicates on webhook-id drops; a Replay button on an old console page (or
-- `replay ID` from an old listing) replayed another dead letter than the one it
-- showed. AUTOINCREMENT keeps the highest id ever used in sqlite_sequence.
--
-- SQLite cannot add AUTOINCREMENT to a table: batches, deliveries and
-- dead_letters are rebuilt (SQLite's documented procedure: foreign keys off for
-- this step, which the marker on the first line asks the migration runner for;
-- it runs PRAGMA foreign_key_check before the COMMIT). This copies those
-- tables once, bodies included: the journal needs as much free space again
-- while it runs. The sequences start at the highest id still in each table
-- (every other table's reference to an id is deleted with it, so none is
-- higher); ids pruned before this step cannot be known.
-- attempts keeps its ids: they are never shown nor sent.
DROP VIEW events;

CREATE TABLE batches_rebuilt (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  received_at    TEXT    NOT NULL,
  kind           TEXT    NOT NULL CHECK (kind IN ('general', 'integration', 'unknown')),
  enterprise_id  TEXT,
  integration_id TEXT,
  event_count    INTEGER NOT NULL,
  content_type   TEXT,
  body           BLOB    NOT NULL,  -- the exact bytes received
  unrouted       INTEGER NOT NULL DEFAULT 0
);
INSERT INTO batches_rebuilt (id, received_at, kind, enterprise_id, integration_id, event_count, content_type, body,
                             unrouted)
  SELECT id, received_at, kind, enterprise_id, integration_id, event_count, content_type, body, unrouted FROM batches;
DROP TABLE batches;
ALTER TABLE batches_rebuilt RENAME TO batches;
CREATE INDEX batches_received_events ON batches (received_at, event_count);
CREATE INDEX batches_unrouted ON batches (received_at) WHERE unrouted = 1;

CREATE TABLE deliveries_rebuilt (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
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
  last_error  TEXT,
  age_from    TEXT                 -- max_age counts from here: the receive time, or the last replay
);
INSERT INTO deliveries_rebuilt (id, batch_id, event_seq, target, state, attempts, created_at, due_at, updated_at,
                                last_status, last_error, age_from)
  SELECT id, batch_id, event_seq, target, state, attempts, created_at, due_at, updated_at, last_status, last_error,
         age_from FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_rebuilt RENAME TO deliveries;
CREATE INDEX deliveries_queue ON deliveries (target, state, id);
CREATE INDEX deliveries_batch ON deliveries (batch_id);
CREATE INDEX deliveries_ready ON deliveries (target, due_at, id) WHERE state IN ('pending', 'retry_wait');

CREATE TABLE dead_letters_rebuilt (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO dead_letters_rebuilt (id, delivery_id, batch_id, target, event_types, attempts, last_status, last_error,
                                  reason, received_at, died_at)
  SELECT id, delivery_id, batch_id, target, event_types, attempts, last_status, last_error, reason, received_at,
         died_at FROM dead_letters;
DROP TABLE dead_letters;
ALTER TABLE dead_letters_rebuilt RENAME TO dead_letters;
CREATE INDEX dead_letters_died_at ON dead_letters (died_at);
CREATE INDEX dead_letters_target ON dead_letters (target, died_at);

CREATE VIEW events (batch_id, seq, discriminator, entity_id) AS
  SELECT b.id, CAST(e.key AS INTEGER), json_extract(e.value, '$.Discriminator'), json_extract(e.value, '$.Value.Id')
  FROM batches b, json_each(CAST(b.body AS TEXT), '$.Events') e
  WHERE b.kind = 'general' AND json_valid(CAST(b.body AS TEXT))
  UNION ALL
  SELECT id, 0, json_extract(CAST(body AS TEXT), '$.Action'), json_extract(CAST(body AS TEXT), '$.Data.Integration.Id')
  FROM batches
  WHERE kind = 'integration' AND json_valid(CAST(body AS TEXT));
