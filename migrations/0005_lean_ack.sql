-- The acknowledging transaction writes what the relay needs to deliver and to
-- answer an operator, and nothing it can derive: the per-event rows (one per
-- event, 21 for a typical Mews batch) were the bulk of it, and every one of
-- them can be read again from the stored body. So `events` becomes a view over
-- batches.body, read with SQLite's JSON functions, for the sqlite3 shell; the
-- relay itself reads event types with its own reader (ingest/payload.h).
-- A body SQLite's JSON reader refuses (a byte-order mark, say) shows no
-- events here; where a body repeats a member name, the relay reads the last
-- one and json_extract the first.
DROP TABLE events;
CREATE VIEW events (batch_id, seq, discriminator, entity_id) AS
  SELECT b.id, CAST(e.key AS INTEGER), json_extract(e.value, '$.Discriminator'), json_extract(e.value, '$.Value.Id')
  FROM batches b, json_each(CAST(b.body AS TEXT), '$.Events') e
  WHERE b.kind = 'general' AND json_valid(CAST(b.body AS TEXT))
  UNION ALL
  SELECT id, 0, json_extract(CAST(body AS TEXT), '$.Action'), json_extract(CAST(body AS TEXT), '$.Data.Integration.Id')
  FROM batches
  WHERE kind = 'integration' AND json_valid(CAST(body AS TEXT));

-- The event count of `status` is a sum over this index rather than a count
-- of rows; it replaces batches_received_at (same leading column).
CREATE INDEX batches_received_events ON batches (received_at, event_count);
DROP INDEX batches_received_at;
