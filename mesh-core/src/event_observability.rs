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
use metrics::{Counter, Gauge, Histogram};
use reserve_proto::events::v1::EventEnvelope;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::catalog;
use crate::trace_context::{self, TRACEPARENT};

/// The relay's span for publishing one event, child of the change that enqueued it.
pub fn publish_span(subject: &str, event_id: &str, traceparent: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        "event.publish",
        otel.name = %format_args!("publish {}", event_type_of(subject)),
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
        otel.name = %format_args!("consume {}", envelope.event_type),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %message.subject,
        messaging.consumer.group.name = %consumer,
        messaging.message.id = %envelope.event_id,
    );
    // `<aggregate>.id` (`reservation.id`, …), from the envelope: the attribute a trace is
    // searched by, whatever aggregates the services define.
    if !envelope.aggregate_type.is_empty() && trace_context::is_exported(&span) {
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

/// One consumer's metrics, their handles looked up once: recording through a handle skips
/// building the series' labels (the consumer's name copied into each) and finding the series
/// again, which every event paid before.
#[derive(Clone)]
pub struct ConsumerMetrics {
    redeliveries: Counter,
    lag: Gauge,
    event_age: Histogram,
    applied: Counter,
    duplicate: Counter,
    retry: Counter,
    dead_lettered: Counter,
    dead_letters: Counter,
    stalls: Counter,
}

/// How a consumed event ended, as `consumer_events_total` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Its effect committed.
    Applied,
    /// Already applied before (a redelivery or a copy).
    Duplicate,
    /// Handed back to be delivered again later.
    Retry,
    /// Given up on and kept as a dead letter.
    DeadLettered,
}

impl ConsumerMetrics {
    /// The series of `consumer` (in the recorder installed now).
    pub fn new(consumer: &str) -> Self {
        let events = |outcome: &'static str| metrics::counter!(catalog::CONSUMER_EVENTS, "consumer" => consumer.to_owned(), "outcome" => outcome);
        Self {
            redeliveries: metrics::counter!(catalog::CONSUMER_REDELIVERIES, "consumer" => consumer.to_owned()),
            lag: metrics::gauge!(catalog::CONSUMER_LAG, "consumer" => consumer.to_owned()),
            event_age: metrics::histogram!(catalog::CONSUMER_EVENT_AGE_SECONDS, "consumer" => consumer.to_owned()),
            applied: events("applied"),
            duplicate: events("duplicate"),
            retry: events("retry"),
            dead_lettered: events("dead_lettered"),
            dead_letters: metrics::counter!(catalog::CONSUMER_DEAD_LETTERS, "consumer" => consumer.to_owned()),
            stalls: metrics::counter!(catalog::CONSUMER_STALLS, "consumer" => consumer.to_owned()),
        }
    }

    /// Makes the counters exist from the consumer's start (at zero), so rates and alerts work
    /// before the first event and a dashboard shows 0 rather than "no data". Adds zero, so
    /// calling it again after a reconnect keeps the counts.
    pub fn register(&self) {
        for counter in [
            &self.applied,
            &self.duplicate,
            &self.retry,
            &self.dead_lettered,
            &self.redeliveries,
            &self.dead_letters,
            &self.stalls,
        ] {
            counter.increment(0);
        }
    }

    /// Counts one delivery: a redelivery when it is not the first, and the consumer's lag as
    /// JetStream reported it with the message.
    pub fn delivered(&self, message: &jetstream::Message) {
        if let Ok(info) = message.info() {
            if info.delivered > 1 {
                self.redeliveries.increment(1);
            }
            self.lag.set(info.pending as f64);
        }
    }

    /// Sets the lag the server reports (events pending and unacked).
    pub fn lag(&self, events: u64) {
        self.lag.set(events as f64);
    }

    /// Counts a stall: events waited on the server while none arrived.
    pub fn stalled(&self) {
        self.stalls.increment(1);
    }

    /// Counts `count` events that ended as `outcome`.
    pub fn settled(&self, outcome: Settled, count: usize) {
        if count == 0 {
            return;
        }
        let count = count as u64;
        match outcome {
            Settled::Applied => self.applied.increment(count),
            Settled::Duplicate => self.duplicate.increment(count),
            Settled::Retry => self.retry.increment(count),
            Settled::DeadLettered => {
                self.dead_lettered.increment(count);
                self.dead_letters.increment(count);
            }
        }
    }

    /// Records how long after it occurred `envelope` was applied.
    pub fn applied(&self, envelope: &EventEnvelope) {
        if envelope.occurred_at.is_some() {
            self.event_age.record(age_of(envelope).as_secs_f64());
        }
    }

    /// Records the age of an event that failed and will be retried, so an event stuck behind
    /// an outage shows in the same histogram as it grows older.
    pub fn still_waiting(&self, age: Duration) {
        self.event_age.record(age.as_secs_f64());
    }
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
