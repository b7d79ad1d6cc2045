//! The placement's two writes, batched ([`mesh_core::batch_commit`]): intents recorded
//! together in one insert, and confirmations settled together in one statement that moves
//! the intents and queues the ReservationPlaced rows of those it moved. Each is the same write
//! for every placement, so a group of placements costs one statement instead of a few per
//! placement; on PostgreSQL that statement is its own transaction (no `BEGIN`, no `COMMIT`),
//! except for confirmations recording an answer under an idempotency key.

use std::time::Instant;

use mesh_core::DbConnection;
use mesh_core::batch_commit::{Batch, Outcomes};
use mesh_core::clock::now_ms;
use mesh_core::events::OutgoingEvent;
use mesh_core::request_log;

use crate::domain::{CustomerId, Id, Reservation, ReservationError};
use crate::store::{self, StoreError};

/// The operation idempotency keys of placements are scoped to.
pub const OPERATION: &str = "place";

/// A placement without an idempotency key, to be recorded as a PLACING intent unless the
/// group runs after `write_by` (too late to leave the lock its time).
pub struct NewIntent {
    /// The product to reserve.
    pub product: Id,
    /// The buyer.
    pub customer: CustomerId,
    /// The latest moment the intent may still be written.
    pub write_by: Instant,
}

/// Intents recorded together. A late one is refused without a write.
pub struct Intents;

impl Batch for Intents {
    type Item = NewIntent;
    type Output = Result<Reservation, ReservationError>;
    type Error = StoreError;

    /// One multi-row insert on PostgreSQL ([`store::record_intents`]).
    fn one_statement(&self, conn: &DbConnection, _: &[NewIntent]) -> bool {
        matches!(conn, DbConnection::Postgres(_))
    }

    fn apply(
        &self,
        conn: &mut DbConnection,
        intents: &[NewIntent],
    ) -> Result<Outcomes<Self>, StoreError> {
        let now = Instant::now();
        let in_time: Vec<(Id, &CustomerId)> = intents
            .iter()
            .filter(|intent| now <= intent.write_by)
            .map(|intent| (intent.product, &intent.customer))
            .collect();
        let mut recorded = store::record_intents(conn, &in_time, now_ms())?.into_iter();
        Ok(intents
            .iter()
            .map(|intent| {
                if now <= intent.write_by {
                    recorded.next().map(Ok).ok_or_else(|| StoreError::Corrupt {
                        id: intent.product.get(),
                        detail: "an intent was not recorded".into(),
                    })
                } else {
                    Ok(Err(too_late()))
                }
            })
            .collect())
    }
}

/// A locked placement to make visible: its intent becomes RESERVED, its event joins the
/// outbox and, for a request with a key, the answer is recorded under the key.
pub struct Confirmation {
    /// The intent to make visible.
    pub id: Id,
    /// The product's seller, as the lock told it.
    pub seller: String,
    /// Its ReservationPlaced event.
    pub event: OutgoingEvent,
    /// For a request with an idempotency key: the key and the answer to record under it.
    pub answer: Option<(String, Vec<u8>)>,
}

/// Confirmations settled together; each answers whether it moved its intent (false when the
/// reconciler abandoned it first, and then nothing of it was written).
pub struct Confirmations;

impl Batch for Confirmations {
    type Item = Confirmation;
    type Output = bool;
    type Error = StoreError;

    /// One statement on PostgreSQL ([`store::reserve_intents`]) unless an answer is to be
    /// recorded under a key, which takes one more.
    fn one_statement(&self, conn: &DbConnection, confirmations: &[Confirmation]) -> bool {
        matches!(conn, DbConnection::Postgres(_))
            && confirmations
                .iter()
                .all(|confirmation| confirmation.answer.is_none())
    }

    fn apply(
        &self,
        conn: &mut DbConnection,
        confirmations: &[Confirmation],
    ) -> Result<Outcomes<Self>, StoreError> {
        let intents: Vec<(Id, &str, &OutgoingEvent)> = confirmations
            .iter()
            .map(|confirmation| {
                (
                    confirmation.id,
                    confirmation.seller.as_str(),
                    &confirmation.event,
                )
            })
            .collect();
        let moved = store::reserve_intents(conn, &intents, now_ms())?;
        let settled = |confirmation: &&Confirmation| moved.contains(&confirmation.id.get());
        for confirmation in confirmations.iter().filter(settled) {
            if let Some((key, answer)) = &confirmation.answer {
                request_log::complete(conn, OPERATION, key, Some(confirmation.id.get()), answer)?;
            }
        }
        Ok(confirmations
            .iter()
            .map(|confirmation| Ok(moved.contains(&confirmation.id.get())))
            .collect())
    }
}

/// The refusal of a request that waited too long to be placed before its deadline.
pub fn too_late() -> ReservationError {
    ReservationError::TryAgainShortly(
        "the request waited too long to be placed before its deadline".into(),
    )
}
