-- The W3C trace context of the change that created the payment (the reservation's trace), so
-- paying it can link its own trace back to the reservation's.
ALTER TABLE payments ADD COLUMN origin_traceparent TEXT;
