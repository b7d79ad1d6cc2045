ALTER TABLE payments DROP COLUMN origin_traceparent;
