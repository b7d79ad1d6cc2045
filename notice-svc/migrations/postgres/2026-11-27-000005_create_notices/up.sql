-- Every notification, recorded in the same transaction as the event that caused it (so none
-- is lost), then delivered by the dispatcher through the configured sink.
CREATE TABLE notices (
    id                 BIGSERIAL PRIMARY KEY,
    event_id           TEXT NOT NULL UNIQUE,
    customer_id        TEXT NOT NULL,
    event_type         TEXT NOT NULL,
    reservation_id     BIGINT NOT NULL,
    message            TEXT NOT NULL,
    created_at_ms      BIGINT NOT NULL,
    -- PENDING (to be sent), SENT, or FAILED (gave up after the last attempt).
    delivery           TEXT NOT NULL CHECK (delivery IN ('PENDING', 'SENT', 'FAILED')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NOT NULL,
    last_error         TEXT
);
CREATE INDEX notices_due ON notices (next_attempt_at_ms) WHERE delivery = 'PENDING';
CREATE INDEX notices_by_customer ON notices (customer_id, id);
