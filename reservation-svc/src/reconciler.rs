//! Releases products locked for reservations that never came to be.
//!
//! Intents (PLACING or ABANDONED rows, see [`crate::placement`]) older than the grace period
//! are claimed (→ ABANDONED, a conditional write that loses to a request path still settling
//! the intent), their product is released in product-svc (idempotent: only a lock held by that
//! reservation is freed), and then the intent is deleted. A failed release leaves the claim in
//! place, so the intent comes round again after another grace period.
//!
//! Several replicas each run a reconciler over the one table; the claim is a compare-and-set
//! on the intent's age ([`store::claim_intent`]), so exactly one of them handles an intent
//! per grace period and they never release the same lock twice at once.
//!
//! The grace period must exceed the longest time a `ReserveProduct` can still be applied after
//! its deadline, so that a release never overtakes the lock it undoes.

use std::time::Duration;

use mesh_core::clock::now_ms;
use mesh_core::{Db, Shutdown};

use crate::domain::{Reservation, ReservationState};
use crate::product_lock::ProductLock;
use crate::store::{self, StoreError};

/// Most intents handled per pass.
const BATCH: i64 = 100;

/// The background task's settings.
#[derive(Clone, Debug)]
pub struct ReconcilerPolicy {
    /// Pause between passes.
    pub interval: Duration,
    /// Age after which an intent is taken to be abandoned.
    pub grace: Duration,
}

/// The reconciler task.
pub struct Reconciler {
    db: Db,
    lock: ProductLock,
    policy: ReconcilerPolicy,
}

impl Reconciler {
    /// A reconciler over `db`, releasing through `lock`.
    pub fn new(db: Db, lock: ProductLock, policy: ReconcilerPolicy) -> Self {
        Self { db, lock, policy }
    }

    /// Runs passes every interval until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        let mut ticker = tokio::time::interval(self.policy.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.requested() => return,
                _ = ticker.tick() => {}
            }
            match self.pass().await {
                Ok(0) => {}
                Ok(released) => tracing::info!(released, "reconciler released abandoned locks"),
                Err(err) => tracing::warn!(%err, "reconciler pass failed; will retry"),
            }
        }
    }

    /// One pass: returns how many intents were cleaned up.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let grace_ms = i64::try_from(self.policy.grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(grace_ms);
        let stale = self
            .db
            .run(move |conn| store::stale_intents(conn, cutoff, BATCH))
            .await?;
        let mut cleaned = 0;
        for intent in stale {
            if self.clean_up(&intent, cutoff).await? {
                cleaned += 1;
            }
        }
        Ok(cleaned)
    }

    async fn clean_up(&self, intent: &Reservation, cutoff: i64) -> Result<bool, StoreError> {
        let id = intent.id;
        let claimed = self
            .db
            .run(move |conn| store::claim_intent(conn, id, cutoff, now_ms()))
            .await?;
        if !claimed {
            return Ok(false);
        }
        if let Err(status) = self.lock.release(intent.product_id, id).await {
            tracing::warn!(reservation = %id, product = %intent.product_id, error = %status.message(), "release failed; will retry");
            return Ok(false);
        }
        self.db
            .run(move |conn| store::delete_intent(conn, id, ReservationState::Abandoned))
            .await
    }
}
