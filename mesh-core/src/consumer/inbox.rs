//! The inbox: the events each consumer has applied, written in the same transaction as the
//! effect, so a redelivered event is recognised and acknowledged without a second effect; and
//! forgotten once the stream can no longer redeliver it.

use std::collections::HashSet;
use std::time::Duration;

use diesel::prelude::*;

use reserve_proto::events::v1::EventEnvelope;

use super::{Batched, EventConsumer, EventHandler, HandleError, KeyedEffect};
use crate::db::{DbConnection, DbError};
use crate::{clock, events};

diesel::table! {
    processed_events (consumer, event_id) {
        consumer -> Text,
        event_id -> Text,
        processed_at_ms -> BigInt,
    }
}

/// Applies `envelope` through `handler` unless `consumer` already did, recording it in the
/// inbox in the caller's transaction: the one path every delivery takes. Returns whether it
/// was applied now (false: a redelivery, nothing changed).
pub(super) fn apply_once(
    conn: &mut DbConnection,
    consumer: &str,
    handler: &dyn EventHandler,
    envelope: &EventEnvelope,
) -> Result<bool, HandleError> {
    // The inbox row first, in one statement that also tells a repeat apart: if the effect
    // fails, the transaction takes the row back with it.
    if !claim(conn, consumer, &envelope.event_id)? {
        return Ok(false);
    }
    handler.apply(conn, envelope)?;
    Ok(true)
}

/// [`apply_once`] for a batch in one transaction: the inbox rows of all its events first, in
/// one statement, then the effects of the events that were new, in order, through the
/// handler's [`EventHandler::apply_batch`]. Returns the events applied now (a redelivery, or
/// a second copy of an event within the batch, is left out).
pub(super) fn apply_all(
    conn: &mut DbConnection,
    consumer: &str,
    handler: &dyn EventHandler,
    events: Vec<(EventEnvelope, tracing::Span)>,
) -> Result<Vec<EventEnvelope>, HandleError> {
    let ids: Vec<&str> = events.iter().map(|(e, _)| e.event_id.as_str()).collect();
    let mut new = claim_all(conn, consumer, &ids)?;
    // `remove`: a copy of the same event later in the batch finds it gone.
    let fresh: Vec<(EventEnvelope, tracing::Span)> = events
        .into_iter()
        .filter(|(envelope, _)| new.remove(&envelope.event_id))
        .collect();
    let batched: Vec<Batched<'_>> = fresh
        .iter()
        .map(|(envelope, span)| Batched { envelope, span })
        .collect();
    handler.apply_batch(conn, &batched)?;
    Ok(fresh.into_iter().map(|(envelope, _)| envelope).collect())
}

/// For a [`KeyedEffect`] handler: applies `events` through it (no inbox row, one statement);
/// returns those applied now, in order (a second copy of an event in the batch is not).
pub(super) fn apply_keyed(
    conn: &mut DbConnection,
    keyed: &dyn KeyedEffect,
    events: Vec<(EventEnvelope, tracing::Span)>,
) -> Result<Vec<EventEnvelope>, HandleError> {
    let batched: Vec<Batched<'_>> = events
        .iter()
        .map(|(envelope, span)| Batched { envelope, span })
        .collect();
    let mut applied = keyed.apply_new(conn, &batched)?;
    drop(batched);
    Ok(events
        .into_iter()
        .filter(|(envelope, _)| applied.remove(&envelope.event_id))
        .map(|(envelope, _)| envelope)
        .collect())
}

/// How often a consumer purges its old inbox rows.
pub(super) const PURGE_EVERY: Duration = Duration::from_secs(3600);

impl EventConsumer {
    /// Forgets inbox rows older than the stream keeps events (plus a day): no redelivery can
    /// bring their events back, so they only grow the table.
    pub(super) async fn purge_inbox(&self) {
        let keep = events::EVENTS_RETENTION + Duration::from_secs(24 * 3600);
        let before =
            clock::now_ms().saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        let consumer = self.subscription.durable.clone();
        let purged = self
            .db
            .run(move |conn| {
                diesel::delete(
                    processed_events::table
                        .filter(processed_events::consumer.eq(consumer))
                        .filter(processed_events::processed_at_ms.lt(before)),
                )
                .execute(conn)
                .map_err(DbError::from)
            })
            .await;
        match purged {
            Ok(0) => {}
            Ok(rows) => {
                tracing::info!(consumer = %self.subscription.durable, rows, "purged old inbox rows");
            }
            Err(err) => {
                tracing::warn!(consumer = %self.subscription.durable, %err, "purging old inbox rows failed");
            }
        }
    }
}

/// Records that `consumer` applies `event_id` now; false when it already had (a redelivery).
/// `ON CONFLICT DO NOTHING`: a replica applying the same event at the same moment waits for
/// the other's transaction, then finds the row and skips.
fn claim(
    conn: &mut DbConnection,
    consumer: &str,
    event_id: &str,
) -> Result<bool, diesel::result::Error> {
    let insert = diesel::insert_into(processed_events::table)
        .values((
            processed_events::consumer.eq(consumer),
            processed_events::event_id.eq(event_id),
            processed_events::processed_at_ms.eq(clock::now_ms()),
        ))
        .on_conflict((processed_events::consumer, processed_events::event_id))
        .do_nothing();
    // Both backends speak ON CONFLICT; diesel's multi-backend connection does not render it.
    let inserted = crate::on_backend!(conn, |c| insert.execute(c))?;
    Ok(inserted == 1)
}

/// [`claim`] for many events in one statement; returns the ids that were new.
fn claim_all(
    conn: &mut DbConnection,
    consumer: &str,
    event_ids: &[&str],
) -> Result<HashSet<String>, diesel::result::Error> {
    let now = clock::now_ms();
    let rows: Vec<_> = event_ids
        .iter()
        .map(|event_id| {
            (
                processed_events::consumer.eq(consumer),
                processed_events::event_id.eq(*event_id),
                processed_events::processed_at_ms.eq(now),
            )
        })
        .collect();
    let insert = diesel::insert_into(processed_events::table)
        .values(rows)
        .on_conflict((processed_events::consumer, processed_events::event_id))
        .do_nothing()
        .returning(processed_events::event_id);
    // Both backends speak ON CONFLICT; diesel's multi-backend connection does not render it.
    let inserted: Vec<String> = crate::on_backend!(conn, |c| insert.get_results(c))?;
    Ok(inserted.into_iter().collect())
}
