//! Durable JetStream pull consumers with an exactly-once *effect* on top of at-least-once
//! delivery.
//!
//! For every message, the handler's effect and the event id (the inbox row in
//! `processed_events`) commit in one database transaction; only then is the message acked. A
//! redelivery of an event already applied (a crash between commit and ack, or a duplicate
//! publish) finds its inbox row, is acked, and changes nothing. A handler whose effect is a
//! row keyed by the event id ([`KeyedEffect`]) tells a redelivery apart by that row instead,
//! and its effect is one statement: no inbox row, no transaction around it.
//!
//! Poison messages never block the stream: an envelope that does not decode or a handler that
//! rejects the event is published at once to `reserve.dlq.<consumer>` with the reason in a
//! header, logged, and acked. A passing failure (database down) is not poison: the event is
//! retried with back-off for as long as the failure lasts ([`crate::redelivery`]), and a long
//! apply sends progress acks so JetStream does not hand the event to a second delivery.
//!
//! Every wait on NATS is bounded ([`events::bounded`]), and a watchdog re-subscribes when the
//! server holds events for the consumer but nothing has arrived for `stall_after`: a pull
//! subscription that went quiet after a NATS restart recovers by itself, and the stall shows
//! in `consumer_stalls_total` and `consumer_lag_messages`.
//!
//! Messages are applied one at a time per consumer, in stream order, which keeps the effects of
//! one producer's events in order in the common case; handlers are still written to be
//! order-safe, because a retried message lets later ones overtake it.
//!
//! Why one file of ~400 lines: the loop, its batching and its settling of each delivery share
//! one consumer's state and read best together; the handler contract, the inbox and the
//! liveness watchdog are in their own files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use prost::Message as _;
use reserve_proto::events::v1::EventEnvelope;
use tokio_stream::StreamExt;
use tracing::Instrument;

use crate::db::{Db, DbConnection};
use crate::event_observability::{ConsumerMetrics, Settled};
use crate::outbox::OutboxSignal;
use crate::redelivery::AfterFailure;
use crate::{Shutdown, event_observability, events};

mod handler;
mod inbox;
mod liveness;

pub use handler::{
    Batched, ConsumerPolicy, EventHandler, HandleError, KeyedEffect, Outcome, Subscription,
    drafts_in_spans, keyed_drafts_in_spans,
};

use inbox::{PURGE_EVERY, apply_all, apply_keyed, apply_once};

/// The setting a batch's transaction starts with: a batch that writes rows another consumer
/// of the service may write too, in another order, gives up on a lock after 50 ms (a possible
/// deadlock, which PostgreSQL would find only after a second) and its events are applied one
/// by one instead. For a [`KeyedEffect`] that opens a transaction of its own, too.
pub const SHORT_LOCK_WAIT: &str = "SET LOCAL lock_timeout = '50ms'";

/// The header a replayed dead letter carries: the one consumer it is meant for. Every other
/// consumer of the subject acks it untouched.
pub const REPLAY_FOR_HEADER: &str = "Reserve-Replay-For";

/// A running consumer: pulls, applies, acks.
pub struct EventConsumer {
    db: Db,
    js: jetstream::Context,
    subscription: Subscription,
    handler: Arc<dyn EventHandler>,
    signal: OutboxSignal,
    policy: ConsumerPolicy,
    metrics: ConsumerMetrics,
}

impl EventConsumer {
    /// A consumer of `subscription` applying events with `handler`; `signal` wakes the outbox
    /// relay after a handler enqueued events.
    pub fn new(
        db: Db,
        js: jetstream::Context,
        subscription: Subscription,
        handler: Arc<dyn EventHandler>,
        signal: OutboxSignal,
        policy: ConsumerPolicy,
    ) -> Self {
        let metrics = ConsumerMetrics::new(&subscription.durable);
        Self {
            db,
            js,
            subscription,
            handler,
            signal,
            policy,
            metrics,
        }
    }

    /// Consumes until shutdown; reconnects (re-provisioning if needed) after any NATS failure.
    pub async fn run(self, shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_triggered() {
            match self.consume(&shutdown).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(consumer = %self.subscription.durable, %err, "consumer interrupted; reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.requested() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// The durable consumer on the server, created if missing.
    pub async fn durable(
        &self,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, async_nats::Error> {
        events::bounded("provisioning the streams", events::provision(&self.js)).await?;
        let stream = events::bounded(
            "finding the stream",
            self.js.get_stream(events::EVENTS_STREAM),
        )
        .await?;
        let consumer = events::bounded(
            "creating the durable consumer",
            stream.get_or_create_consumer(
                &self.subscription.durable,
                pull::Config {
                    durable_name: Some(self.subscription.durable.clone()),
                    filter_subject: self.subscription.filter_subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.policy.ack_wait,
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                },
            ),
        )
        .await?;
        Ok(consumer)
    }

    async fn consume(&self, shutdown: &Shutdown) -> Result<(), async_nats::Error> {
        let consumer = self.durable().await?;
        let mut messages = events::bounded("subscribing", consumer.messages()).await?;
        self.metrics.register();
        tracing::info!(consumer = %self.subscription.durable, subject = %self.subscription.filter_subject, "consuming");
        let mut last_delivery = Instant::now();
        let mut last_purge: Option<Instant> = None;
        let mut watchdog = tokio::time::interval(self.policy.stall_after / 3);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = watchdog.tick() => {
                    if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                        self.purge_inbox().await;
                        last_purge = Some(Instant::now());
                    }
                    self.check_stall(&consumer, last_delivery).await?;
                    continue;
                }
                _ = shutdown.requested() => {
                    Self::release_prefetched(&mut messages).await;
                    return Ok(());
                }
            };
            last_delivery = Instant::now();
            let first = match next {
                Some(Ok(message)) => message,
                Some(Err(err)) => return Err(err.into()),
                None => return Err("message stream ended".into()),
            };
            // Whatever else has already arrived joins this batch (never waiting for more).
            self.metrics.delivered(&first);
            let mut batch = vec![first];
            while batch.len() < self.policy.batch {
                match tokio::time::timeout(Duration::ZERO, messages.next()).await {
                    Ok(Some(Ok(message))) => {
                        self.metrics.delivered(&message);
                        batch.push(message);
                    }
                    Ok(Some(Err(err))) => return Err(err.into()),
                    _ => break,
                }
            }
            self.process_batch(&batch).await?;
        }
    }

    /// Applies a batch of messages in one transaction (one commit instead of one per event,
    /// which is what bounds a consumer under load), then acks them. If any event in it fails,
    /// the transaction is rolled back and each message is processed on its own, so one bad
    /// event never holds back or dead-letters its neighbours.
    async fn process_batch(&self, batch: &[jetstream::Message]) -> Result<(), async_nats::Error> {
        if self.apply_batch(batch).await? {
            return Ok(());
        }
        let mut remaining = batch.iter();
        while let Some(message) = remaining.next() {
            let outcome = self.process(message).await;
            self.settle(message, &outcome).await?;
            if let Outcome::Retry(_, delay) = outcome {
                // A passing failure (the database is down) would only be waited out again by
                // each of the rest, one pool timeout after another: they go back with the same
                // delay instead, untried.
                let mut handed_back = 0;
                for rest in remaining.by_ref() {
                    events::bounded("nak", rest.ack_with(AckKind::Nak(Some(delay)))).await?;
                    handed_back += 1;
                }
                self.metrics.settled(Settled::Retry, handed_back);
            }
        }
        Ok(())
    }

    /// Applies a whole batch in one transaction and acks it; `false` when it cannot (one
    /// message, a replay, an undecodable envelope, a handler error, a lock wait): the caller
    /// then takes the messages one by one, each with its own outcome.
    async fn apply_batch(&self, batch: &[jetstream::Message]) -> Result<bool, async_nats::Error> {
        if batch.len() < 2 || batch.iter().any(|message| replay_target(message).is_some()) {
            return Ok(false);
        }
        let Some(envelopes) = batch
            .iter()
            .map(|message| EventEnvelope::decode(message.payload.clone()).ok())
            .collect::<Option<Vec<EventEnvelope>>>()
        else {
            return Ok(false);
        };
        let consumer = self.subscription.durable.clone();
        let handler = Arc::clone(&self.handler);
        let spans: Vec<tracing::Span> = batch
            .iter()
            .zip(&envelopes)
            .map(|(message, envelope)| {
                event_observability::consume_span(&consumer, message, envelope)
            })
            .collect();
        let in_batch: Vec<&jetstream::Message> = batch.iter().collect();
        let keyed = self.handler.keyed().is_some();
        let apply = move |conn: &mut DbConnection| -> Result<Vec<EventEnvelope>, HandleError> {
            let events = envelopes.into_iter().zip(spans).collect();
            match handler.keyed() {
                Some(keyed) => apply_keyed(conn, keyed, events),
                None => apply_all(conn, &consumer, handler.as_ref(), events),
            }
        };
        let db = self.db.clone();
        let work = async move {
            if keyed {
                // One statement, atomic by itself.
                db.run(apply).await
            } else {
                // Two consumers of one service may write the same rows in different orders; a
                // batch never waits long for the other's locks (which could be a deadlock,
                // found only after a second): it gives up and the events are applied one by
                // one instead.
                db.transaction_with(SHORT_LOCK_WAIT, apply).await
            }
        };
        let Ok(applied) = self.in_progress(&in_batch, work).await else {
            return Ok(false);
        };
        for envelope in &applied {
            self.handler.committed(envelope);
            self.metrics.applied(envelope);
        }
        self.metrics.settled(Settled::Applied, applied.len());
        self.metrics
            .settled(Settled::Duplicate, batch.len() - applied.len());
        if !applied.is_empty() && self.handler.announces() {
            self.signal.wake();
        }
        for message in batch {
            events::bounded("ack", message.ack()).await?;
        }
        Ok(true)
    }

    /// Applies every event already in the stream for this subscription, then returns how many
    /// it applied: for rebuilding a read model from the start of the stream.
    pub async fn catch_up(&self) -> Result<usize, async_nats::Error> {
        let mut consumer = self.durable().await?;
        let mut applied = 0;
        loop {
            let mut batch = consumer
                .batch()
                .max_messages(500)
                .expires(Duration::from_millis(500))
                .messages()
                .await?;
            let mut seen = 0;
            while let Some(message) = batch.next().await {
                let message = message?;
                seen += 1;
                self.metrics.delivered(&message);
                let outcome = self.process(&message).await;
                if outcome == Outcome::Applied {
                    applied += 1;
                }
                self.settle(&message, &outcome).await?;
            }
            if seen == 0 {
                let info = consumer.info().await?;
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    return Ok(applied);
                }
            }
        }
    }

    /// Deletes this subscription's durable consumer from the server (for one-off consumers).
    pub async fn delete(&self) -> Result<(), async_nats::Error> {
        let stream = self.js.get_stream(events::EVENTS_STREAM).await?;
        stream.delete_consumer(&self.subscription.durable).await?;
        Ok(())
    }

    /// Applies one message and decides its fate, without acking it (see [`Self::settle`]).
    pub async fn process(&self, message: &jetstream::Message) -> Outcome {
        if replay_target(message).is_some_and(|target| target != self.subscription.durable) {
            // A dead letter replayed for another consumer of the same subject.
            return Outcome::AlreadyApplied;
        }
        let envelope = match EventEnvelope::decode(message.payload.clone()) {
            Ok(envelope) => envelope,
            Err(err) => return Outcome::DeadLettered(format!("envelope does not decode: {err}")),
        };
        let attempt = message
            .info()
            .map_or(1, |info| u64::try_from(info.delivered).unwrap_or(1));
        let age = event_observability::age_of(&envelope);
        let span =
            event_observability::consume_span(&self.subscription.durable, message, &envelope);
        let consumer = self.subscription.durable.clone();
        let handler = Arc::clone(&self.handler);
        let event_id = envelope.event_id.clone();
        let keyed = self.handler.keyed().is_some();
        let apply = move |conn: &mut DbConnection| -> Result<Option<EventEnvelope>, HandleError> {
            if let Some(keyed) = handler.keyed() {
                // The consume span is current here: the database task runs inside it.
                let one = vec![(envelope, tracing::Span::current())];
                return Ok(apply_keyed(conn, keyed, one)?.pop());
            }
            let applied = apply_once(conn, &consumer, handler.as_ref(), &envelope)?;
            Ok(applied.then_some(envelope))
        };
        let db = self.db.clone();
        let transaction = async move {
            if keyed {
                db.run(apply).await
            } else {
                db.transaction(apply).await
            }
        }
        .instrument(span);
        let applied = self.in_progress(&[message], transaction).await;
        match applied {
            Ok(Some(envelope)) => {
                self.handler.committed(&envelope);
                self.metrics.applied(&envelope);
                if self.handler.announces() {
                    self.signal.wake();
                }
                Outcome::Applied
            }
            Ok(None) => Outcome::AlreadyApplied,
            Err(HandleError::Reject(reason)) => Outcome::DeadLettered(reason),
            Err(HandleError::Retry(reason)) => {
                self.metrics.still_waiting(age);
                match self
                    .policy
                    .redelivery
                    .after_passing_failure(attempt, age, &reason)
                {
                    AfterFailure::RetryIn(delay) => {
                        tracing::warn!(consumer = %self.subscription.durable, %event_id, attempt, retry_in_ms = delay.as_millis() as u64, %reason, "event failed; will retry");
                        Outcome::Retry(reason, delay)
                    }
                    AfterFailure::GiveUp(reason) => Outcome::DeadLettered(reason),
                }
            }
        }
    }

    /// Acks, naks or dead-letters `message` according to `outcome`.
    pub async fn settle(
        &self,
        message: &jetstream::Message,
        outcome: &Outcome,
    ) -> Result<(), async_nats::Error> {
        let settled = match outcome {
            Outcome::Applied => Settled::Applied,
            Outcome::AlreadyApplied => Settled::Duplicate,
            Outcome::Retry(..) => Settled::Retry,
            Outcome::DeadLettered(_) => Settled::DeadLettered,
        };
        self.metrics.settled(settled, 1);
        match outcome {
            Outcome::Applied | Outcome::AlreadyApplied => {
                events::bounded("ack", message.ack()).await?;
            }
            Outcome::Retry(_, delay) => {
                events::bounded("nak", message.ack_with(AckKind::Nak(Some(*delay)))).await?;
            }
            Outcome::DeadLettered(reason) => {
                tracing::error!(consumer = %self.subscription.durable, subject = %message.subject, %reason, "event dead-lettered");
                let letter = crate::dead_letters::letter_headers(
                    reason,
                    &message.subject,
                    message.headers.as_ref(),
                );
                let subject = format!("{}.{}", events::DLQ_PREFIX, self.subscription.durable);
                let ack = events::bounded(
                    "publishing a dead letter",
                    self.js
                        .publish_with_headers(subject, letter, message.payload.clone()),
                )
                .await?;
                events::bounded("the dead letter's ack", ack).await?;
                events::bounded("ack", message.ack()).await?;
            }
        }
        Ok(())
    }
}

/// The consumer a replayed dead letter is meant for, if `message` is one.
fn replay_target(message: &jetstream::Message) -> Option<&str> {
    message
        .headers
        .as_ref()?
        .get(REPLAY_FOR_HEADER)
        .map(async_nats::HeaderValue::as_str)
}
