-- One row per reservation that asked for or gave up a lock. Both ReserveProduct and
-- ReleaseProduct take this row's lock first (an upsert), so a lock and the release of the same
-- reservation never interleave; `released` fences every later lock of that reservation.
CREATE TABLE reservation_fences (
    reservation_id BIGINT PRIMARY KEY,
    released       BOOLEAN NOT NULL DEFAULT FALSE,
    touched_at_ms  BIGINT NOT NULL
);
-- Old fences are purged (no lock arrives a day late).
CREATE INDEX reservation_fences_touched ON reservation_fences (touched_at_ms);
