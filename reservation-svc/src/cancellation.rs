//! Cancelling a reservation: RESERVED or CONFIRMED → CANCELLED and ReservationCancelled in one
//! transaction. The product is freed and the payment voided or refunded by their services
//! when the event reaches them; cancelling works while they are down.

use mesh_core::Db;
use mesh_core::auth::Caller;
use mesh_core::clock::now_ms;
use mesh_core::outbox::{self, OutboxSignal};
use mesh_core::request_log::{self, Answer, RequestKey};

use crate::domain::{Id, Reservation, ReservationError, ReservationState};
use crate::events;
use crate::store::{self, StoreError};

/// The operation idempotency keys of cancellations are scoped to.
const OPERATION: &str = "cancel";

/// Cancels reservation `id`; with a `key`, a retry of the same request gets the first answer.
pub async fn cancel(
    db: &Db,
    signal: &OutboxSignal,
    caller: Caller,
    id: Id,
    key: Option<RequestKey<Reservation>>,
) -> Result<Answer<Reservation>, StoreError> {
    let cancelled = db
        .transaction(move |conn| -> Result<Answer<Reservation>, StoreError> {
            // Only its buyer or an admin cancels; checked before the key is claimed, so a
            // refused caller leaves nothing behind.
            let current = store::find(conn, id)?;
            caller.require_buyer_or_admin(&current.customer_id, &format!("reservation {id}"))?;
            if let Some(key) = &key {
                let fingerprint = format!("reservation={id}");
                if let Some(first) = request_log::claim_once::<StoreError>(
                    conn,
                    OPERATION,
                    &key.key,
                    &fingerprint,
                    Some(id.get()),
                )? {
                    return Ok(Answer::Before(first));
                }
            }
            let moved = store::transition(
                conn,
                id,
                &ReservationState::CANCELLABLE,
                ReservationState::Cancelled,
                now_ms(),
            )?;
            let Some(cancelled) = moved else {
                // Refused: say why from the row as it is.
                let current = store::find_any(conn, id)?;
                current.state.cancel(id)?;
                return Err(ReservationError::IllegalTransition(format!(
                    "reservation {id} changed while cancelling; try again"
                ))
                .into());
            };
            outbox::enqueue(conn, &events::cancelled(&cancelled))?;
            if let Some(key) = &key {
                let answer = (key.encode)(&cancelled);
                request_log::complete(conn, OPERATION, &key.key, Some(id.get()), &answer)?;
            }
            Ok(Answer::Now(cancelled))
        })
        .await?;
    match &cancelled {
        Answer::Now(reservation) => {
            signal.wake();
            tracing::info!(reservation = %id, product = %reservation.product_id, "reservation cancelled");
        }
        Answer::Before(_) => {
            tracing::info!(reservation = %id, "cancel request replayed from its idempotency key");
        }
    }
    Ok(cancelled)
}
