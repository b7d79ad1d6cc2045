CREATE TABLE reservations (
    id            BIGSERIAL PRIMARY KEY,
    product_id    BIGINT NOT NULL,
    customer_id   TEXT NOT NULL,
    -- PLACING and ABANDONED are internal intent states of the product lock (see placement.rs);
    -- only RESERVED, CANCELLED and CONFIRMED rows are visible to users.
    status        TEXT NOT NULL
        CHECK (status IN ('PLACING', 'ABANDONED', 'RESERVED', 'CANCELLED', 'CONFIRMED')),
    -- Per-aggregate version, increased by every visible change; sent in every event so read
    -- models can drop stale ones.
    version       BIGINT NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL
);
-- The reconciler scans intents by age.
CREATE INDEX reservations_intents ON reservations (updated_at_ms)
    WHERE status IN ('PLACING', 'ABANDONED');
-- Invariant I1 enforced by the database as well: one live reservation per product.
CREATE UNIQUE INDEX reservations_one_live_per_product ON reservations (product_id)
    WHERE status IN ('RESERVED', 'CONFIRMED');
