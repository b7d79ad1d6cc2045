-- The dispatcher takes due notifications longest-due first (next attempt, then id): the
-- index hands them over in that order, so a poll reads only what it sends.
DROP INDEX notices_due;
CREATE INDEX notices_due ON notices (next_attempt_at_ms, id) WHERE delivery = 'PENDING';
