-- The seller of the reserved product, from ReservationPlaced: they may read the payment.
-- '' when unknown (payments from before sellers were recorded, or made from a cancellation).
ALTER TABLE payments ADD COLUMN seller_id TEXT NOT NULL DEFAULT '';
