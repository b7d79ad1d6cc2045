//! The projection: reservation and payment events → my-page entries, and a "changed" signal
//! for live watchers after each commit.

use mesh_core::DbConnection;
use std::collections::HashSet;

use mesh_core::consumer::{
    Batched, EventHandler, HandleError, KeyedEffect, drafts_in_spans, keyed_drafts_in_spans,
};
use reserve_proto::events::v1::EventEnvelope;

use crate::domain::{Id, UnreadableEvent, change_of};
use crate::fanout::ChangeFeed;
use crate::store;

/// An entry changed (sent after its transaction committed).
#[derive(Clone, Debug)]
pub struct EntryChanged {
    /// The entry.
    pub reservation_id: Id,
    /// Its buyer.
    pub customer_id: String,
}

/// Applies events to the read model and tells watchers on every replica ([`ChangeFeed`]).
/// Announcing never blocks the consumer: a watcher too slow to keep up misses signals and
/// re-reads its whole page.
pub struct MyPageProjection {
    changes: ChangeFeed,
}

impl MyPageProjection {
    /// A projection announcing changes on `changes`.
    pub fn new(changes: ChangeFeed) -> Self {
        Self { changes }
    }
}

impl EventHandler for MyPageProjection {
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError> {
        if let Some(change) = change_of(event)? {
            store::apply(conn, &change)?;
        }
        Ok(())
    }

    /// A batch's changes in as few upserts as its entries allow (see [`store::apply_all`]).
    fn apply_batch(
        &self,
        conn: &mut DbConnection,
        events: &[Batched<'_>],
    ) -> Result<(), HandleError> {
        let changes = drafts_in_spans(events, change_of)?;
        store::apply_all(conn, &changes)?;
        Ok(())
    }

    /// An entry's halves are taken by version, so a repeated event changes nothing by itself:
    /// the consumer needs no inbox (and no transaction) for my page.
    fn keyed(&self) -> Option<&dyn KeyedEffect> {
        Some(self)
    }

    /// Called only for an event that changed its entry, so watchers hear of changes, not of
    /// redeliveries or stale events.
    fn committed(&self, event: &EventEnvelope) {
        if let Ok(Some(change)) = change_of(event) {
            self.changes.announce(EntryChanged {
                reservation_id: change.reservation_id(),
                customer_id: change.customer_id().to_owned(),
            });
        }
    }

    /// A read model: it announces nothing, so the outbox relay is not woken for it.
    fn announces(&self) -> bool {
        false
    }
}

impl KeyedEffect for MyPageProjection {
    /// A batch's changes in one upsert (in one transaction of several when the batch repeats
    /// an entry), each read inside its event's span. An event whose change is stale or
    /// repeated is not applied now; an event that changes no entry counts as applied.
    fn apply_new(
        &self,
        conn: &mut DbConnection,
        events: &[Batched<'_>],
    ) -> Result<HashSet<String>, HandleError> {
        let (changes, mut applied) = keyed_drafts_in_spans(events, |event| {
            let change = change_of(event)?;
            Ok::<_, UnreadableEvent>(change.map(|change| (event.event_id.as_str(), change)))
        })?;
        applied.extend(
            store::apply_new(conn, &changes)?
                .into_iter()
                .map(str::to_owned),
        );
        Ok(applied)
    }
}

/// An event this service cannot read never becomes readable: reject it (dead-lettered).
impl From<UnreadableEvent> for HandleError {
    fn from(err: UnreadableEvent) -> Self {
        HandleError::Reject(err.to_string())
    }
}
