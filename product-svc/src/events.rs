//! What product-svc consumes: ReservationCancelled frees the product, PaymentCompleted sells it.
//!
//! Both are order-safe because each applies only while the event's reservation still holds the
//! product: a PaymentCompleted arriving after the same reservation's cancellation finds the
//! product already free (or held by someone else) and changes nothing, and a cancellation
//! arriving after the sale frees it (the payment is refunded). Redeliveries are filtered by the
//! inbox before these run, and would be no-ops anyway.

use mesh_core::DbConnection;
use mesh_core::consumer::{EventHandler, HandleError};
use mesh_core::events::open;
use reserve_proto::events::v1::{EventEnvelope, PaymentCompleted, ReservationCancelled};

use crate::domain::{Id, ProductStatus};
use crate::store::{self, StoreError};

/// ReservationCancelled → the product becomes AVAILABLE if that reservation held it.
pub struct FreeOnCancellation;

impl EventHandler for FreeOnCancellation {
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError> {
        let Some(cancelled) = open::<ReservationCancelled>(event) else {
            return Ok(());
        };
        let cancelled = cancelled?;
        let (product, reservation) = ids(cancelled.product_id, cancelled.reservation_id)?;
        store::fence_released(conn, reservation).map_err(StoreError::retry)?;
        let freed = store::transition_if_held(
            conn,
            product,
            reservation,
            &ProductStatus::FREED_BY_CANCELLATION,
            ProductStatus::Available,
        )
        .map_err(StoreError::retry)?;
        tracing::info!(product = %product, reservation = %reservation, freed, "reservation cancelled");
        Ok(())
    }

    /// Products have no events of their own: nothing for the outbox relay.
    fn announces(&self) -> bool {
        false
    }
}

/// PaymentCompleted → the product becomes SOLD_OUT if that reservation still holds it.
pub struct SellOnPayment;

impl EventHandler for SellOnPayment {
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError> {
        let Some(completed) = open::<PaymentCompleted>(event) else {
            return Ok(());
        };
        let completed = completed?;
        let (product, reservation) = ids(completed.product_id, completed.reservation_id)?;
        let sold = store::transition_if_held(
            conn,
            product,
            reservation,
            &ProductStatus::SOLD_BY_PAYMENT,
            ProductStatus::SoldOut,
        )
        .map_err(StoreError::retry)?;
        tracing::info!(product = %product, reservation = %reservation, sold, "payment completed");
        Ok(())
    }

    /// Products have no events of their own: nothing for the outbox relay.
    fn announces(&self) -> bool {
        false
    }
}

fn ids(product: i64, reservation: i64) -> Result<(Id, Id), HandleError> {
    Ok((
        Id::parse(product, "product id")?,
        Id::parse(reservation, "reservation id")?,
    ))
}
