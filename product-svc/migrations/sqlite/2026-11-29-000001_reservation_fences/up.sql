-- One row per reservation that asked for or gave up a lock; `released` fences every later
-- lock of that reservation (see the PostgreSQL migration).
CREATE TABLE reservation_fences (
    reservation_id INTEGER PRIMARY KEY NOT NULL,
    released       BOOLEAN NOT NULL DEFAULT FALSE,
    touched_at_ms  BIGINT NOT NULL
);
CREATE INDEX reservation_fences_touched ON reservation_fences (touched_at_ms);
