//! Placing a reservation: record the intent, lock the product, then settle the intent.
//!
//! The reservation id must exist before the lock (the lock is taken *for* it, which makes the
//! lock call idempotent and retryable), yet a reservation may only become visible once its
//! product is locked. So the row is first written as an invisible PLACING intent:
//!
//! * lock granted → PLACING becomes RESERVED (conditional: unless the reconciler claimed it);
//! * lock refused → the intent is deleted; nothing was locked, nothing is stored;
//! * outcome unknown (deadline, overload, product-svc down) → the intent becomes ABANDONED and
//!   the buyer hears "try again shortly". A late lock may still land in product-svc, so the
//!   product is not released now: the [`crate::reconciler`] releases it once the grace period
//!   has passed, then deletes the intent.
//!
//! We chose this reconciler over release-on-failure because an immediate release can overtake
//! the lock request it means to undo (both in flight to a slow product-svc), leaving the product
//! locked by a reservation that does not exist. A crash at any step leaves an intent that the
//! reconciler finds by its age, so no product stays locked by a ghost.

use mesh_core::Db;
use mesh_core::clock::now_ms;
use mesh_core::outbox::{self, OutboxSignal};

use crate::domain::{
    CustomerId, Id, IntentFate, Reservation, ReservationError, ReservationState, fate_of_intent,
};
use crate::events;
use crate::product_lock::ProductLock;
use crate::store::{self, StoreError};

/// Places reservations; cheap to clone.
#[derive(Clone)]
pub struct Placement {
    db: Db,
    lock: ProductLock,
    outbox: OutboxSignal,
}

impl Placement {
    /// Placement over `db`, locking through `lock`, waking the outbox relay with `outbox`.
    pub fn new(db: Db, lock: ProductLock, outbox: OutboxSignal) -> Self {
        Self { db, lock, outbox }
    }

    /// Reserves `product` for `customer`: RESERVED once locked, or an error and nothing stored.
    pub async fn place(
        &self,
        product: Id,
        customer: CustomerId,
    ) -> Result<Reservation, StoreError> {
        // The deadline bounds recording the intent and the lock together, so a busy database
        // does not stretch a buyer's wait past it.
        let started = tokio::time::Instant::now();
        let intent = self
            .db
            .run(move |conn| store::record_intent(conn, product, &customer, now_ms()))
            .await?;
        let lock = self
            .lock
            .reserve_within(product, intent.id, started + self.lock.deadline())
            .await;
        let id = intent.id;
        match fate_of_intent(lock) {
            IntentFate::Reserve(product_name) => {
                let placed = Reservation {
                    state: ReservationState::Reserved,
                    version: 1,
                    ..intent
                };
                let event = events::placed(&placed, product_name);
                // The reservation and its ReservationPlaced event commit together.
                let settled = self
                    .db
                    .transaction(move |conn| {
                        let settled =
                            store::settle_intent(conn, id, ReservationState::Reserved, now_ms())?;
                        if settled {
                            outbox::enqueue(conn, &event)?;
                        }
                        Ok::<_, StoreError>(settled)
                    })
                    .await?;
                if !settled {
                    // The reconciler claimed the intent first (we were slower than its grace
                    // period); it releases the product.
                    return Err(ReservationError::TryAgainShortly(
                        "the reservation took too long to complete".into(),
                    )
                    .into());
                }
                self.outbox.wake();
                tracing::info!(reservation = %id, product = %product, "reservation placed");
                Ok(placed)
            }
            IntentFate::Discard(refusal) => {
                self.db
                    .run(move |conn| store::delete_intent(conn, id, ReservationState::Placing))
                    .await?;
                tracing::info!(product = %product, reason = %refusal, "reservation refused");
                Err(refusal.into())
            }
            IntentFate::Abandon(err) => {
                self.db
                    .run(move |conn| {
                        store::settle_intent(conn, id, ReservationState::Abandoned, now_ms())
                    })
                    .await?;
                tracing::warn!(reservation = %id, product = %product, reason = %err, "product lock outcome unknown; intent left to the reconciler");
                Err(err.into())
            }
        }
    }
}
