//! Cancelling a reservation: RESERVED or CONFIRMED → CANCELLED and ReservationCancelled in one
//! transaction. The product is freed and the payment voided or refunded by their services
//! when the event reaches them; cancelling works while they are down.

use mesh_core::Db;
use mesh_core::clock::now_ms;
use mesh_core::outbox::{self, OutboxSignal};

use crate::domain::{Id, Reservation, ReservationError, ReservationState};
use crate::events;
use crate::store::{self, StoreError};

/// Cancels reservation `id`.
pub async fn cancel(db: &Db, signal: &OutboxSignal, id: Id) -> Result<Reservation, StoreError> {
    let cancelled = db
        .transaction(move |conn| -> Result<Reservation, StoreError> {
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
            Ok(cancelled)
        })
        .await?;
    signal.wake();
    tracing::info!(reservation = %id, product = %cancelled.product_id, "reservation cancelled");
    Ok(cancelled)
}
