-- The seller of the reserved product, from the lock's answer: they may read the reservation.
-- '' for reservations from before sellers were recorded.
ALTER TABLE reservations ADD COLUMN seller_id TEXT NOT NULL DEFAULT '';
