-- Routing by property: a batch that no target wanted (its EnterpriseId or
-- IntegrationId is not in any target's filter, or no event passes a filter) is
-- journaled all the same, with unrouted = 1, so that `status` can count it and
-- an operator can find it. A flag written with the batch rather than a count
-- derived from "no delivery rows": purging dead letters and pruning delivered
-- work remove delivery rows too, and the anti-join would scan every batch.
-- Batches received before this migration are 0: their routing is not known.
ALTER TABLE batches ADD COLUMN unrouted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX batches_unrouted ON batches (received_at) WHERE unrouted = 1;
