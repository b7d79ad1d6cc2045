CREATE TABLE products (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('AVAILABLE', 'PENDING', 'SOLD_OUT')),
    -- The reservation holding the product; set exactly when it is not AVAILABLE.
    reservation_id BIGINT,
    -- Per-aggregate version, increased by every change.
    version        BIGINT NOT NULL DEFAULT 1,
    CHECK ((status = 'AVAILABLE') = (reservation_id IS NULL))
);
