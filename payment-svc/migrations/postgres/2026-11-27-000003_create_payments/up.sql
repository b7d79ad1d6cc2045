CREATE TABLE payments (
    id            BIGSERIAL PRIMARY KEY,
    -- One payment per reservation: the ReservationPlaced event creates it.
    reservation_id BIGINT NOT NULL UNIQUE,
    product_id    BIGINT NOT NULL,
    customer_id   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('UNPAID', 'PAID', 'VOIDED', 'REFUNDED')),
    -- Per-aggregate version, increased by every change; sent in every event.
    version       BIGINT NOT NULL DEFAULT 1,
    updated_at_ms BIGINT NOT NULL
);
