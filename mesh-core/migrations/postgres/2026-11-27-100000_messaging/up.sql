-- Transactional outbox: written in the same transaction as the state change it announces;
-- the relay publishes pending rows to JetStream (event_id as Nats-Msg-Id) and stamps them.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    subject         TEXT NOT NULL,
    payload         BYTEA NOT NULL,
    traceparent     TEXT,
    created_at_ms   BIGINT NOT NULL,
    published_at_ms BIGINT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at_ms IS NULL;

-- Inbox: the events each consumer has applied, written in the same transaction as the effect,
-- so a redelivered event is recognised and acknowledged without a second effect.
CREATE TABLE processed_events (
    consumer        TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    processed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
