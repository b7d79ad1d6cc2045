-- A relay claims the rows it is publishing until this time (ms since the epoch), so relays of
-- several replicas share the outbox without publishing the same rows; a crashed relay's
-- claim simply expires.
ALTER TABLE outbox ADD COLUMN claimed_until_ms BIGINT;
