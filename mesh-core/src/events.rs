//! The one envelope every domain event travels in, and the JetStream layout that carries it.
//!
//! Subjects are `reserve.events.<aggregate>.<EventType>` (e.g.
//! `reserve.events.reservation.ReservationPlaced`) in the stream `RESERVE_EVENTS`; poison
//! messages go to `reserve.dlq.<consumer>` in `RESERVE_DLQ`. [`provision`] creates both
//! streams idempotently and is what `script/server`, the tests and the Helm job all run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use async_nats::jetstream::stream::{Config as StreamConfig, RetentionPolicy, StorageType};
use prost::Message;
use reserve_proto::events::DomainEvent;
use reserve_proto::events::v1::EventEnvelope;

/// Stream of every domain event.
pub const EVENTS_STREAM: &str = "RESERVE_EVENTS";
/// Stream of dead letters.
pub const DLQ_STREAM: &str = "RESERVE_DLQ";
/// Subject prefix of domain events.
pub const EVENTS_PREFIX: &str = "reserve.events";
/// Subject prefix of dead letters.
pub const DLQ_PREFIX: &str = "reserve.dlq";
/// How long JetStream remembers a `Nats-Msg-Id` to drop a re-published duplicate. Longer than
/// any outbox relay retry gap, so a relay crash between publish and mark is harmless.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The subject of event type `E`.
pub fn subject_of<E: DomainEvent>() -> String {
    format!("{EVENTS_PREFIX}.{}.{}", E::AGGREGATE_TYPE, E::EVENT_TYPE)
}

/// An event ready for the outbox: its id, subject and encoded envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingEvent {
    /// The envelope's event id (UUID), also the JetStream `Nats-Msg-Id`.
    pub event_id: String,
    /// Where it is published.
    pub subject: String,
    /// The encoded [`EventEnvelope`].
    pub payload: Vec<u8>,
    /// The W3C context of the change that produced it (also inside the envelope).
    pub traceparent: Option<String>,
}

impl OutgoingEvent {
    /// Wraps `event` in a fresh envelope; `version` is the aggregate's version after the change.
    /// The current span's trace context travels with it, so its consumers join the trace.
    pub fn new<E: DomainEvent>(event: &E, version: i64) -> Self {
        let event_id = uuid::Uuid::new_v4().to_string();
        let traceparent = crate::trace_context::current_traceparent();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let envelope = EventEnvelope {
            event_id: event_id.clone(),
            event_type: E::EVENT_TYPE.to_owned(),
            aggregate_type: E::AGGREGATE_TYPE.to_owned(),
            aggregate_id: event.aggregate_id(),
            aggregate_version: version,
            occurred_at: Some(prost_types::Timestamp {
                seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(now.subsec_nanos()).unwrap_or_default(),
            }),
            traceparent: traceparent.clone().unwrap_or_default(),
            payload: event.encode_to_vec(),
        };
        Self {
            event_id,
            subject: subject_of::<E>(),
            payload: envelope.encode_to_vec(),
            traceparent,
        }
    }
}

/// Reads an event of type `E` out of an envelope; `None` when the envelope holds another type.
pub fn open<E: DomainEvent>(envelope: &EventEnvelope) -> Option<Result<E, prost::DecodeError>> {
    (envelope.event_type == E::EVENT_TYPE).then(|| E::decode(envelope.payload.as_slice()))
}

/// How long the event stream keeps an event; inbox rows older than this (plus a day) can no
/// longer meet a redelivery and are purged.
pub const EVENTS_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest any single request to NATS may take before the caller gives up and treats the
/// connection as broken (the relay retries, a consumer subscribes anew).
pub const NATS_TIMEOUT: Duration = Duration::from_secs(5);

/// Awaits one NATS operation for at most [`NATS_TIMEOUT`]: an unbounded wait on a connection
/// that went quiet during a server restart is how a relay or consumer stops for good.
pub async fn bounded<T, E>(
    what: &str,
    operation: impl std::future::IntoFuture<Output = Result<T, E>>,
) -> Result<T, async_nats::Error>
where
    E: Into<async_nats::Error>,
{
    match tokio::time::timeout(NATS_TIMEOUT, operation).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(format!("{what}: no answer from NATS in {}s", NATS_TIMEOUT.as_secs()).into()),
    }
}

/// Creates (or finds) the event and dead-letter streams. Idempotent.
pub async fn provision(js: &jetstream::Context) -> Result<(), async_nats::Error> {
    js.get_or_create_stream(StreamConfig {
        name: EVENTS_STREAM.to_owned(),
        subjects: vec![format!("{EVENTS_PREFIX}.>")],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        max_age: EVENTS_RETENTION,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await?;
    js.get_or_create_stream(StreamConfig {
        name: DLQ_STREAM.to_owned(),
        subjects: vec![format!("{DLQ_PREFIX}.>")],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// How long a one-shot provisioning step (the provisioning job, a test's set-up) keeps
/// retrying before it gives up.
pub const PROVISION_PATIENCE: Duration = Duration::from_secs(60);

/// [`provision`], retried for up to `patience`: on a loaded machine, or right after the server
/// started, a JetStream request times out now and then, and a step that runs once (unlike a
/// service, which retries on its own) should not fail for it. Returns the last error.
pub async fn provision_patiently(
    js: &jetstream::Context,
    patience: Duration,
) -> Result<(), async_nats::Error> {
    const PAUSE: Duration = Duration::from_millis(250);
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match provision(js).await {
            Ok(()) => return Ok(()),
            Err(err) if tokio::time::Instant::now() + PAUSE < deadline => {
                tracing::warn!(error = %err, "provisioning the streams failed; retrying");
                tokio::time::sleep(PAUSE).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Connects to NATS at `url` without waiting for it: the client reconnects in the background
/// (forever), so a service starts and serves while NATS is down and its outbox simply waits.
pub async fn connect(
    url: &str,
    name: &str,
) -> Result<jetstream::Context, async_nats::ConnectError> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await?;
    Ok(jetstream::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reserve_proto::events::v1::{PaymentCompleted, ReservationPlaced};

    #[test]
    fn subjects_name_aggregate_and_type() {
        assert_eq!(
            subject_of::<ReservationPlaced>(),
            "reserve.events.reservation.ReservationPlaced"
        );
    }

    #[test]
    fn an_envelope_round_trips_its_event() {
        let placed = ReservationPlaced {
            seller_id: "lee".into(),
            reservation_id: 7,
            product_id: 3,
            customer_id: "kim".into(),
            product_name: "Phone".into(),
        };
        let outgoing = OutgoingEvent::new(&placed, 2);
        let envelope = EventEnvelope::decode(outgoing.payload.as_slice()).expect("envelope");
        assert_eq!(envelope.event_id, outgoing.event_id);
        assert_eq!(
            (envelope.aggregate_type.as_str(), envelope.aggregate_id),
            ("reservation", 7)
        );
        assert_eq!(envelope.aggregate_version, 2);
        let opened = open::<ReservationPlaced>(&envelope)
            .expect("same type")
            .expect("decodes");
        assert_eq!(opened, placed);
        assert!(open::<PaymentCompleted>(&envelope).is_none());
    }
}
