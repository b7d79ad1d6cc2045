-- Idempotency keys (see the PostgreSQL migration).
CREATE TABLE request_log (
    request_key   TEXT PRIMARY KEY NOT NULL,
    fingerprint   TEXT NOT NULL,
    target_id     BIGINT,
    response      BLOB,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX request_log_created ON request_log (created_at_ms);
