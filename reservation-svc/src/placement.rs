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

use mesh_core::batch_commit::BatchCommit;
use mesh_core::clock::now_ms;
use mesh_core::group_commit::GroupCommit;
use mesh_core::outbox::OutboxSignal;
use mesh_core::request_log::{self, Answer, Claim, KeyConflict, Recorded, RequestKey};
use mesh_core::{Db, DbConnection};

use crate::domain::{
    CustomerId, Id, IntentFate, LockedProduct, MIN_LOCK_TIME, Reservation, ReservationError,
    ReservationState, fate_of_intent, lock_deadline,
};
use crate::events;
use crate::placement_batches::{
    Confirmation, Confirmations, Intents, NewIntent, OPERATION, too_late,
};
use crate::product_lock::ProductLock;
use crate::store::{self, StoreError};

/// Places reservations; cheap to clone.
#[derive(Clone)]
pub struct Placement {
    db: Db,
    /// Intents of requests with an idempotency key share a commit
    /// ([`mesh_core::group_commit`]): each claims its key first.
    keyed_intents: GroupCommit,
    /// Intents without a key, recorded together in one insert ([`mesh_core::batch_commit`]).
    intents: BatchCommit<Intents>,
    /// Confirmations settled together in one update and one outbox insert.
    confirmations: BatchCommit<Confirmations>,
    lock: ProductLock,
    outbox: OutboxSignal,
}

/// Where a placement starts.
enum Start {
    /// A new intent to lock for.
    Fresh(Reservation),
    /// A request with the same key placed it before: its answer.
    Answered(Vec<u8>),
}

impl Placement {
    /// Placement over `db`, locking through `lock`, waking the outbox relay with `outbox`.
    pub fn new(db: Db, lock: ProductLock, outbox: OutboxSignal) -> Self {
        Self {
            keyed_intents: GroupCommit::new(db.clone()),
            intents: BatchCommit::new(db.clone(), Intents),
            confirmations: BatchCommit::new(db.clone(), Confirmations),
            db,
            lock,
            outbox,
        }
    }

    /// Reserves `product` for `customer`: RESERVED once locked, or an error and nothing stored.
    /// With a `key`, a retry of the same request gets the first answer, even when that answer
    /// never reached the caller (its call timed out after the reservation committed).
    /// `answer_by` is when the caller stops waiting (its `grpc-timeout`), if it said.
    pub async fn place(
        &self,
        product: Id,
        customer: CustomerId,
        key: Option<RequestKey<Reservation>>,
        answer_by: Option<std::time::Instant>,
    ) -> Result<Answer<Reservation>, StoreError> {
        // The deadline bounds recording the intent and the lock together, so a busy database
        // does not stretch a buyer's wait past it; and it ends early enough to answer the
        // caller in time, whatever the request spent before it got here.
        let Some(lock_until) =
            lock_deadline(std::time::Instant::now(), self.lock.deadline(), answer_by)
        else {
            // Too late to be answered in time: refused before any write or call, so a backlog
            // (an open-loop surge queueing in front of the service) is shed cheaply instead of
            // each hopeless request recording an intent and timing out its lock.
            return Err(too_late().into());
        };
        // The intent waits its turn in the group; if that wait leaves too little for the
        // lock, it is not written at all (the same refusal, decided when the group runs).
        let write_by = lock_until - MIN_LOCK_TIME.min(self.lock.deadline());
        let start = match &key {
            None => Start::Fresh(
                self.intents
                    .submit(NewIntent {
                        product,
                        customer,
                        write_by,
                    })
                    .await??,
            ),
            Some(key) => {
                let request_key = key.key.clone();
                self.keyed_intents
                    .transaction(move |conn| {
                        if std::time::Instant::now() > write_by {
                            return Err(too_late().into());
                        }
                        begin(conn, product, &customer, &request_key)
                    })
                    .await?
            }
        };
        let intent = match start {
            Start::Fresh(intent) => intent,
            Start::Answered(first) => {
                tracing::info!(product = %product, "reservation request replayed from its idempotency key");
                return Ok(Answer::Before(first));
            }
        };
        let lock = self
            .lock
            .reserve_within(
                product,
                intent.id,
                tokio::time::Instant::from_std(lock_until),
            )
            .await;
        match fate_of_intent(lock) {
            IntentFate::Reserve(locked) => self.confirm(intent, locked, key).await,
            IntentFate::Discard(refusal) => {
                self.discard(intent.id, key.map(|key| key.key)).await?;
                tracing::info!(product = %product, reason = %refusal, "reservation refused");
                Err(refusal.into())
            }
            IntentFate::Abandon(err) => {
                tracing::warn!(reservation = %intent.id, product = %product, reason = %err, "product lock outcome unknown; intent left to the reconciler");
                // The buyer hears "try again shortly" now, not after one more write: the
                // deadline has passed already. Marking the intent ABANDONED only lets the
                // reconciler take it without waiting for its age (it takes PLACING intents
                // by age too), so a crash or a failure here changes nothing but that.
                let placement = self.clone();
                let id = intent.id;
                tokio::spawn(async move {
                    if let Err(err) = placement.abandon(id).await {
                        tracing::warn!(reservation = %id, %err, "could not mark the intent abandoned; the reconciler will find it by its age");
                    }
                });
                Err(err.into())
            }
        }
    }

    /// The product is locked: the reservation, its ReservationPlaced event and the recorded
    /// answer commit together.
    async fn confirm(
        &self,
        intent: Reservation,
        locked: LockedProduct,
        key: Option<RequestKey<Reservation>>,
    ) -> Result<Answer<Reservation>, StoreError> {
        let id = intent.id;
        let product = intent.product_id;
        let placed = Reservation {
            state: ReservationState::Reserved,
            version: 1,
            seller_id: locked.seller,
            ..intent
        };
        let confirmation = Confirmation {
            id,
            seller: placed.seller_id.clone(),
            event: events::placed(&placed, locked.name),
            answer: key
                .as_ref()
                .map(|key| (key.key.clone(), (key.encode)(&placed))),
        };
        let settled = self.confirmations.submit(confirmation).await?;
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
        Ok(Answer::Now(placed))
    }

    /// Nothing was locked: the intent goes, and so does the key, so a retry runs afresh (the
    /// product may be free by then).
    async fn discard(&self, id: Id, request_key: Option<String>) -> Result<(), StoreError> {
        self.db
            .transaction(move |conn| {
                store::delete_intent(conn, id, ReservationState::Placing)?;
                if let Some(key) = &request_key {
                    request_log::forget(conn, OPERATION, key)?;
                }
                Ok::<_, StoreError>(())
            })
            .await
    }

    /// The lock's outcome is unknown: the intent is left to the reconciler. The key stays, so
    /// a retry answers "in progress" until the reconciler has released the product and
    /// deleted the intent, then starts afresh.
    async fn abandon(&self, id: Id) -> Result<(), StoreError> {
        self.db
            .run(move |conn| {
                store::settle_intent(conn, id, ReservationState::Abandoned, "", now_ms())
            })
            .await?;
        Ok(())
    }
}

/// Records the intent of a request with an idempotency key, claiming the key. A key seen
/// before gives the first answer if there is one; "in progress" while the first attempt's
/// intent exists (still locking, or abandoned and waiting for the reconciler); and a fresh
/// start once that intent is gone, since the first attempt then left nothing behind.
fn begin(
    conn: &mut DbConnection,
    product: Id,
    customer: &CustomerId,
    key: &str,
) -> Result<Start, StoreError> {
    let fingerprint = format!("product={product};customer={}", customer.as_str());
    match request_log::claim(conn, OPERATION, key, &fingerprint, None)? {
        Claim::New => {}
        Claim::Seen(seen) if seen.fingerprint != fingerprint => {
            return Err(KeyConflict::Reused(key.to_owned()).into());
        }
        Claim::Seen(Recorded {
            response: Some(first),
            ..
        }) => return Ok(Start::Answered(first)),
        Claim::Seen(Recorded { target_id, .. }) => {
            if let Some(first) = target_id.and_then(|raw| Id::parse(raw, "reservation id").ok()) {
                match store::find_any(conn, first) {
                    Ok(_) => return Err(KeyConflict::InProgress(key.to_owned()).into()),
                    Err(StoreError::Domain(ReservationError::NotFound(_))) => {}
                    Err(err) => return Err(err),
                }
            }
        }
    }
    let intent = store::record_intent(conn, product, customer, now_ms())?;
    request_log::set_target(conn, OPERATION, key, intent.id.get())?;
    Ok(Start::Fresh(intent))
}
