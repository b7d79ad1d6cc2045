//! What payment-svc consumes (ReservationPlaced → a payment UNPAID; ReservationCancelled →
//! VOIDED or REFUNDED) and publishes (PaymentRequested, PaymentCompleted, PaymentVoided,
//! PaymentRefunded).
//!
//! Order-safe: a cancellation that overtakes its placement creates the payment directly as
//! VOIDED, so the late placement finds a payment and creates none; a placement or cancellation
//! delivered twice finds the work done and changes nothing.

use mesh_core::DbConnection;
use mesh_core::consumer::{EventHandler, HandleError};
use mesh_core::events::{OutgoingEvent, open};
use mesh_core::outbox;
use reserve_proto::events::v1::{
    EventEnvelope, PaymentCompleted, PaymentRefunded, PaymentRequested, PaymentVoided,
    ReservationCancelled, ReservationPlaced,
};

use crate::domain::{Id, Payment, PaymentStatus};
use crate::store::{self, NewPayment, StoreError};

/// The event announcing a payment's status, by status.
pub fn announce(payment: &Payment) -> OutgoingEvent {
    let (id, reservation_id, product_id, customer_id) = (
        payment.id.get(),
        payment.reservation_id.get(),
        payment.product_id.get(),
        payment.customer_id.clone(),
    );
    match payment.status {
        PaymentStatus::Unpaid => OutgoingEvent::new(
            &PaymentRequested {
                payment_id: id,
                reservation_id,
                product_id,
                customer_id,
            },
            payment.version,
        ),
        PaymentStatus::Paid => OutgoingEvent::new(
            &PaymentCompleted {
                payment_id: id,
                reservation_id,
                product_id,
                customer_id,
            },
            payment.version,
        ),
        PaymentStatus::Voided => OutgoingEvent::new(
            &PaymentVoided {
                payment_id: id,
                reservation_id,
                customer_id,
            },
            payment.version,
        ),
        PaymentStatus::Refunded => OutgoingEvent::new(
            &PaymentRefunded {
                payment_id: id,
                reservation_id,
                customer_id,
            },
            payment.version,
        ),
    }
}

/// Applies the reservation events that concern payments.
pub struct ReservationEvents;

impl EventHandler for ReservationEvents {
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError> {
        if let Some(placed) = open::<ReservationPlaced>(event) {
            let placed = placed?;
            return on_placed(conn, &placed);
        }
        if let Some(cancelled) = open::<ReservationCancelled>(event) {
            let cancelled = cancelled?;
            return on_cancelled(conn, &cancelled);
        }
        Ok(())
    }
}

fn on_placed(conn: &mut DbConnection, placed: &ReservationPlaced) -> Result<(), HandleError> {
    let reservation = Id::parse(placed.reservation_id, "reservation id")?;
    let created = store::create_unless_exists(
        conn,
        &NewPayment {
            reservation_id: reservation,
            product_id: Id::parse(placed.product_id, "product id")?,
            customer_id: &placed.customer_id,
            seller_id: &placed.seller_id,
            status: PaymentStatus::Unpaid,
        },
    )
    .map_err(StoreError::retry)?;
    // None: the reservation has its payment already (a repeated placement under a new event
    // id, or a cancellation that overtook it).
    let Some(payment) = created else {
        return Ok(());
    };
    outbox::enqueue(conn, &announce(&payment))?;
    tracing::info!(payment = %payment.id, reservation = %reservation, "payment requested");
    Ok(())
}

fn on_cancelled(
    conn: &mut DbConnection,
    cancelled: &ReservationCancelled,
) -> Result<(), HandleError> {
    let reservation = Id::parse(cancelled.reservation_id, "reservation id")?;
    let payment = match store::find_by_reservation(conn, reservation).map_err(StoreError::retry)? {
        Some(payment) => {
            let Some(next) = payment.status.on_cancellation() else {
                return Ok(());
            };
            store::transition(conn, payment.id, &[payment.status], next)
                .map_err(StoreError::retry)?
                .ok_or_else(|| HandleError::Retry("payment changed concurrently".into()))?
        }
        // The cancellation overtook the placement: record the payment as never payable.
        None => store::create(
            conn,
            &NewPayment {
                reservation_id: reservation,
                product_id: Id::parse(cancelled.product_id, "product id")?,
                customer_id: &cancelled.customer_id,
                seller_id: "",
                status: PaymentStatus::Voided,
            },
        )
        .map_err(StoreError::retry)?,
    };
    outbox::enqueue(conn, &announce(&payment))?;
    tracing::info!(payment = %payment.id, reservation = %reservation, status = %payment.status, "reservation cancelled");
    Ok(())
}
