-- Several relays on one journal (journal/leases.h): each relay registers
-- itself in `relays`; the relay that dispatches a target holds its lease in
-- `target_leases`; a delivery claimed under a lease carries the lease's epoch
-- (the fencing number) in `claim`, so that a relay that lost the lease can
-- no longer change the row. Lease and heartbeat times are the server's clock.

ALTER TABLE deliveries ADD COLUMN claim BIGINT NOT NULL DEFAULT 0;

CREATE TABLE relays (
  name          TEXT COLLATE "C" PRIMARY KEY,
  instance      TEXT NOT NULL,    -- random per process: two live relays with one name are refused
  host          TEXT NOT NULL,
  version       TEXT NOT NULL,
  targets       TEXT NOT NULL,    -- its configured target names, comma-separated
  fingerprint   TEXT NOT NULL,    -- of its target definitions (no secret in it)
  admin         TEXT NOT NULL,    -- its admin listener, host:port
  accepted_hour BIGINT NOT NULL,  -- batches it acknowledged in the last hour
  started_at    TIMESTAMPTZ NOT NULL,
  heartbeat_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE target_leases (
  target     TEXT COLLATE "C" PRIMARY KEY,
  owner      TEXT COLLATE "C" NOT NULL,
  epoch      BIGINT NOT NULL,     -- +1 at every acquisition
  expires_at TIMESTAMPTZ NOT NULL
);
