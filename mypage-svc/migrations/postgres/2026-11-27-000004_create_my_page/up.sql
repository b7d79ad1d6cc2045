-- The my-page read model: one row per reservation, built only from events. Each half (the
-- reservation's, the payment's) carries the version of the aggregate it last reflected, so an
-- older event arriving late never overwrites a newer state.
CREATE TABLE my_page (
    reservation_id      BIGINT PRIMARY KEY,
    product_id          BIGINT NOT NULL,
    product_name        TEXT NOT NULL,
    customer_id         TEXT NOT NULL,
    reservation_status  TEXT,
    reservation_version BIGINT NOT NULL,
    payment_id          BIGINT,
    payment_status      TEXT,
    payment_version     BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
CREATE INDEX my_page_by_customer ON my_page (customer_id, reservation_id);
