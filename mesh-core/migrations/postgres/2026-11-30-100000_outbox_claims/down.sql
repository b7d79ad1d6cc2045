ALTER TABLE outbox DROP COLUMN claimed_until_ms;
