//! Spans and metrics of the event backbone: the trace context rides from the change that
//! produced an event, through the outbox row and the NATS `traceparent` header, into every
//! consumer's span, and on into the events that consumer publishes in turn.
//!
//! ```text
//! Reserve (reservation-svc) ─▶ publish ReservationPlaced (relay) ─▶ consume ReservationPlaced
//!                                                                      (payment, mypage, notice)
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use reserve_proto::events::v1::EventEnvelope;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::catalog;
use crate::trace_context::{self, TRACEPARENT};

/// The relay's span for publishing one event, child of the change that enqueued it.
pub fn publish_span(subject: &str, event_id: &str, traceparent: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        "event.publish",
        otel.name = %format!("publish {}", event_type_of(subject)),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.destination.name = %subject,
        messaging.message.id = %event_id,
    );
    trace_context::adopt(&span, traceparent);
    span
}

/// A consumer's span for applying one event, child of the span that published it.
pub fn consume_span(
    consumer: &str,
    message: &jetstream::Message,
    envelope: &EventEnvelope,
) -> tracing::Span {
    let span = tracing::info_span!(
        "event.consume",
        otel.name = %format!("consume {}", envelope.event_type),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %message.subject,
        messaging.consumer.group.name = %consumer,
        messaging.message.id = %envelope.event_id,
    );
    // `<aggregate>.id` (`reservation.id`, …), from the envelope: the attribute a trace is
    // searched by, whatever aggregates the services define.
    if !envelope.aggregate_type.is_empty() {
        span.set_attribute(
            format!("{}.id", envelope.aggregate_type),
            envelope.aggregate_id,
        );
    }
    let header = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(TRACEPARENT))
        .map(async_nats::HeaderValue::as_str);
    let fallback = Some(envelope.traceparent.as_str()).filter(|value| !value.is_empty());
    trace_context::adopt(&span, header.or(fallback));
    span
}

/// `reserve.events.reservation.ReservationPlaced` → `ReservationPlaced`.
fn event_type_of(subject: &str) -> &str {
    subject.rsplit('.').next().unwrap_or(subject)
}

/// Counts one delivery to `consumer`: a redelivery when it is not the first, and the
/// consumer's lag as JetStream reported it with the message.
pub fn delivered(consumer: &str, message: &jetstream::Message) {
    if let Ok(info) = message.info() {
        if info.delivered > 1 {
            metrics::counter!(catalog::CONSUMER_REDELIVERIES, "consumer" => consumer.to_owned())
                .increment(1);
        }
        metrics::gauge!(catalog::CONSUMER_LAG, "consumer" => consumer.to_owned())
            .set(info.pending as f64);
    }
}

/// Counts `count` events of `consumer` that ended as `outcome`.
pub fn settled(consumer: &str, outcome: &'static str, count: usize) {
    if count == 0 {
        return;
    }
    metrics::counter!(catalog::CONSUMER_EVENTS, "consumer" => consumer.to_owned(), "outcome" => outcome)
        .increment(count as u64);
    if outcome == "dead_lettered" {
        metrics::counter!(catalog::CONSUMER_DEAD_LETTERS, "consumer" => consumer.to_owned())
            .increment(count as u64);
    }
}

/// How long ago `envelope`'s change happened (zero when it carries no time).
pub fn age_of(envelope: &EventEnvelope) -> Duration {
    let Some(occurred) = &envelope.occurred_at else {
        return Duration::ZERO;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let then = occurred.seconds as f64 + f64::from(occurred.nanos) / 1e9;
    Duration::try_from_secs_f64((now - then).max(0.0)).unwrap_or_default()
}

/// Records how long after it occurred `envelope` was applied by `consumer`.
pub fn applied(consumer: &str, envelope: &EventEnvelope) {
    if envelope.occurred_at.is_none() {
        return;
    }
    metrics::histogram!(catalog::CONSUMER_EVENT_AGE_SECONDS, "consumer" => consumer.to_owned())
        .record(age_of(envelope).as_secs_f64());
}

/// Records the age of an event `consumer` failed to apply and will retry, so an event stuck
/// behind an outage shows in the same histogram as it grows older.
pub fn still_waiting(consumer: &str, age: Duration) {
    metrics::histogram!(catalog::CONSUMER_EVENT_AGE_SECONDS, "consumer" => consumer.to_owned())
        .record(age.as_secs_f64());
}

/// Makes `consumer`'s series exist from its start (at zero), so rates and alerts work before
/// the first event and a dashboard shows 0 rather than "no data". Adds zero, so calling it
/// again after a reconnect keeps the counts.
pub fn register_consumer(consumer: &str) {
    for outcome in ["applied", "duplicate", "retry", "dead_lettered"] {
        metrics::counter!(catalog::CONSUMER_EVENTS, "consumer" => consumer.to_owned(), "outcome" => outcome)
            .increment(0);
    }
    metrics::counter!(catalog::CONSUMER_REDELIVERIES, "consumer" => consumer.to_owned())
        .increment(0);
    metrics::counter!(catalog::CONSUMER_DEAD_LETTERS, "consumer" => consumer.to_owned())
        .increment(0);
    metrics::counter!(catalog::CONSUMER_STALLS, "consumer" => consumer.to_owned()).increment(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_spans_are_named_after_the_event_type() {
        assert_eq!(
            event_type_of("reserve.events.reservation.ReservationPlaced"),
            "ReservationPlaced"
        );
    }
}
