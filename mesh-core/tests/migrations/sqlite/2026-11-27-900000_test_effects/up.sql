-- Effects of the test handler: one row per application, deliberately without a unique key,
-- so a doubled effect shows as two rows.
CREATE TABLE test_effects (
    event_id TEXT NOT NULL,
    note     TEXT NOT NULL
);
