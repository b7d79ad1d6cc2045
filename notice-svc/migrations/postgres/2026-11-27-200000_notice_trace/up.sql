-- The W3C trace context of the change the notification announces: its delivery joins that
-- trace, and a webhook receives it as a traceparent header.
ALTER TABLE notices ADD COLUMN traceparent TEXT;
