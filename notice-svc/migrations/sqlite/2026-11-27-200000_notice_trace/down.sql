ALTER TABLE notices DROP COLUMN traceparent;
