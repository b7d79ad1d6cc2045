-- Idempotency keys: a client's request id, what the request was (its fingerprint), what it
-- acts on, and the answer it got, written in the same transaction as the change it made.
CREATE TABLE request_log (
    request_key   TEXT PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    target_id     BIGINT,
    response      BYTEA,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX request_log_created ON request_log (created_at_ms);
