//! What a service writes to consume events, and what it gets back: the handler it
//! implements ([`EventHandler`], failing with [`HandleError`]), the subscription it names, the
//! consumer settings, and the [`Outcome`] of each delivery. The loop that drives them is in
//! the module above.

use std::collections::HashSet;
use std::time::Duration;

use reserve_proto::events::v1::EventEnvelope;

use crate::db::{DbConnection, DbError};
use crate::redelivery::RedeliveryPolicy;

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// A passing failure (database busy or down): the event is redelivered later.
    #[error("transient: {0}")]
    Retry(String),
    /// The event can never be applied (undecodable payload, impossible data): dead-lettered.
    #[error("rejected: {0}")]
    Reject(String),
}

impl From<diesel::result::Error> for HandleError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Retry(err.to_string())
    }
}

impl From<DbError> for HandleError {
    fn from(err: DbError) -> Self {
        Self::Retry(err.to_string())
    }
}

/// An event carrying an id that is not one (zero, negative) never applies: rejected.
impl From<crate::ids::InvalidId> for HandleError {
    fn from(err: crate::ids::InvalidId) -> Self {
        Self::Reject(err.to_string())
    }
}

impl From<prost::DecodeError> for HandleError {
    fn from(err: prost::DecodeError) -> Self {
        Self::Reject(format!("payload does not decode: {err}"))
    }
}

/// Applies events of one subscription. `apply` runs inside the transaction that also records
/// the event as processed; whatever it writes (state, outbox rows) commits with it.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event`. Events of other types on the subject are ignored by returning `Ok`.
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError>;

    /// Applies the new events of a batch, in order, in one transaction with their inbox rows.
    /// The default runs [`Self::apply`] for each inside its span. A handler whose effects are
    /// rows of their own may write many events' rows in one statement instead: every
    /// statement is a round trip for the service and a parse, bind and execute for the
    /// database, and under load a batch holds tens of events. Should it fail, the batch is
    /// rolled back and its events are applied one by one through [`Self::apply`], each with
    /// its own outcome, so an override need not tell which event failed.
    fn apply_batch(
        &self,
        conn: &mut DbConnection,
        events: &[Batched<'_>],
    ) -> Result<(), HandleError> {
        for event in events {
            event.span.in_scope(|| self.apply(conn, event.envelope))?;
        }
        Ok(())
    }

    /// The handler as a [`KeyedEffect`], if it is one: its events then need no inbox row and
    /// no transaction.
    fn keyed(&self) -> Option<&dyn KeyedEffect> {
        None
    }

    /// Called after `apply`'s transaction committed (never for a redelivery), e.g. to tell
    /// live watchers; must not block.
    fn committed(&self, _event: &EventEnvelope) {}

    /// Whether applying events may add rows to the outbox. The consumer wakes the outbox
    /// relay after each committed batch only for a handler that says so: a pass of the relay
    /// is a transaction of four statements, and a handler that never announces anything (a
    /// read model, a notification log) would otherwise cost one per batch for nothing. A
    /// wrong `false` delays announcements until the relay's next poll; it loses none.
    fn announces(&self) -> bool {
        true
    }
}

/// A handler whose effect tells a repeat apart by itself: one statement writing a row keyed
/// by the event id with `ON CONFLICT DO NOTHING`. The consumer keeps no inbox row for its
/// events and opens no transaction (one statement is atomic by itself), so a batch is one
/// round trip where the inbox made it four: begin, inbox, effect, commit.
pub trait KeyedEffect: Send + Sync {
    /// Applies those of `events` not applied before, in one statement, and returns the ids of
    /// the events applied now; an event that asks for no effect counts as applied. A
    /// rejected event fails the call: the consumer then takes the batch's events one by one.
    fn apply_new(
        &self,
        conn: &mut DbConnection,
        events: &[Batched<'_>],
    ) -> Result<HashSet<String>, HandleError>;
}

/// A new event in a batch, with the span its effects are traced in (a trace context a
/// handler stores, such as an outbox row's, is the one current inside it).
#[derive(Clone, Copy, Debug)]
pub struct Batched<'a> {
    /// The event.
    pub envelope: &'a EventEnvelope,
    /// Its consume span.
    pub span: &'a tracing::Span,
}

/// What `draft` makes of each event of a batch (`None`: nothing for that one), in order, each
/// made inside its event's span (so a trace context it records is its own event's): for an
/// [`EventHandler::apply_batch`] that then writes all of them in one statement.
pub fn drafts_in_spans<'a, T, E>(
    events: &[Batched<'a>],
    mut draft: impl FnMut(&'a EventEnvelope) -> Result<Option<T>, E>,
) -> Result<Vec<T>, E> {
    let mut drafts = Vec::with_capacity(events.len());
    for event in events {
        drafts.extend(event.span.in_scope(|| draft(event.envelope))?);
    }
    Ok(drafts)
}

/// [`drafts_in_spans`] for a [`KeyedEffect`]: the drafts, and the ids of the events that ask
/// for no effect, which count as applied (an `apply_new` adds the ids its statement wrote).
pub fn keyed_drafts_in_spans<'a, T, E>(
    events: &[Batched<'a>],
    mut draft: impl FnMut(&'a EventEnvelope) -> Result<Option<T>, E>,
) -> Result<(Vec<T>, HashSet<String>), E> {
    let mut no_effect = HashSet::new();
    let drafts = drafts_in_spans(events, |event| {
        let drafted = draft(event)?;
        if drafted.is_none() {
            no_effect.insert(event.event_id.clone());
        }
        Ok(drafted)
    })?;
    Ok((drafts, no_effect))
}

/// One durable consumer: a name and the subject it filters on.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// Durable consumer name, also the inbox's consumer key and the dead-letter subject token.
    pub durable: String,
    /// Subject filter, e.g. `reserve.events.reservation.>` (one filter: NATS 2.9 compatible).
    pub filter_subject: String,
}

/// Settings shared by a service's consumers.
#[derive(Clone, Debug)]
pub struct ConsumerPolicy {
    /// Back-off and maximum age for events that fail for a passing reason.
    pub redelivery: RedeliveryPolicy,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Most events applied in one transaction (those already received, never waiting).
    pub batch: usize,
    /// Nothing received for this long while the server holds undelivered events for the
    /// consumer: the subscription is considered stalled and made anew.
    pub stall_after: Duration,
}

impl Default for ConsumerPolicy {
    fn default() -> Self {
        Self {
            redelivery: RedeliveryPolicy::default(),
            ack_wait: Duration::from_secs(10),
            batch: 64,
            stall_after: Duration::from_secs(15),
        }
    }
}

/// What became of one delivered message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied now.
    Applied,
    /// Applied before (a redelivery or duplicate): acked, nothing changed.
    AlreadyApplied,
    /// Will be redelivered after the delay, for the reason.
    Retry(String, Duration),
    /// Sent to the dead-letter subject.
    DeadLettered(String),
}
