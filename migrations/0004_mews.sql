-- Routing by property: a batch that no target wanted (its EnterpriseId or
-- IntegrationId is not in any target's filter, or no event passes a filter) is
-- journaled all the same, with unrouted = 1, so that `status` can count it and
-- an operator can find it. A flag written with the batch rather than a count
-- derived from "no delivery rows": purging dead letters and pruning delivered
-- work remove delivery rows too, and the anti-join would scan every batch.
-- Batches received before this migration are 0: their routing is not known.
ALTER TABLE batches ADD COLUMN unrouted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX batches_unrouted ON batches (received_at) WHERE unrouted = 1;

-- Mews resends a message it did not see acknowledged, with the same bytes. When
-- the relay answered 503 because the commit took longer than its limit but the
-- batch was committed all the same, the batch is listed here: a byte-identical
-- post for the same IntegrationId within [server] resend_window is then
-- answered 202 with this batch's id and stores nothing new. Only these batches
-- are ever matched; a batch acknowledged normally never is.
CREATE TABLE late_commits (
  batch_id    INTEGER PRIMARY KEY REFERENCES batches (id) ON DELETE CASCADE,
  body_sha256 TEXT NOT NULL,  -- hex SHA-256 of the body; the bytes themselves are compared too
  answered_at TEXT NOT NULL   -- when the relay answered 503 for it
);
CREATE INDEX late_commits_body ON late_commits (body_sha256);
