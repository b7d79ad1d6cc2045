//! What reservation-svc publishes (ReservationPlaced, ReservationCancelled,
//! ReservationConfirmed) and consumes (PaymentCompleted → CONFIRMED).

use mesh_core::DbConnection;
use mesh_core::consumer::{EventHandler, HandleError};
use mesh_core::events::{OutgoingEvent, open};
use mesh_core::outbox;
use reserve_proto::events::v1::{
    EventEnvelope, PaymentCompleted, ReservationCancelled, ReservationConfirmed, ReservationPlaced,
};

use crate::domain::{Id, Reservation};
use crate::store::{self, StoreError};
use mesh_core::clock::now_ms;

/// The event announcing a newly placed reservation.
pub fn placed(reservation: &Reservation, product_name: String) -> OutgoingEvent {
    OutgoingEvent::new(
        &ReservationPlaced {
            reservation_id: reservation.id.get(),
            product_id: reservation.product_id.get(),
            customer_id: reservation.customer_id.clone(),
            product_name,
            seller_id: reservation.seller_id.clone(),
        },
        reservation.version,
    )
}

/// The event announcing a cancellation.
pub fn cancelled(reservation: &Reservation) -> OutgoingEvent {
    OutgoingEvent::new(
        &ReservationCancelled {
            reservation_id: reservation.id.get(),
            product_id: reservation.product_id.get(),
            customer_id: reservation.customer_id.clone(),
        },
        reservation.version,
    )
}

fn confirmed(reservation: &Reservation) -> OutgoingEvent {
    OutgoingEvent::new(
        &ReservationConfirmed {
            reservation_id: reservation.id.get(),
            product_id: reservation.product_id.get(),
            customer_id: reservation.customer_id.clone(),
        },
        reservation.version,
    )
}

/// PaymentCompleted → the reservation becomes CONFIRMED (and says so in an event).
///
/// Order-safe: a payment completing for a reservation cancelled in the meantime leaves it
/// CANCELLED (payment-svc refunds it from the ReservationCancelled event); a redelivered
/// PaymentCompleted finds it CONFIRMED already and changes nothing.
pub struct ConfirmOnPayment;

impl EventHandler for ConfirmOnPayment {
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError> {
        let Some(completed) = open::<PaymentCompleted>(event) else {
            return Ok(());
        };
        let completed = completed?;
        let id = Id::parse(completed.reservation_id, "reservation id")?;
        let current = store::find_any(conn, id).map_err(StoreError::reject_refusal)?;
        let Some(next) = current.state.confirm() else {
            tracing::info!(reservation = %id, state = %current.state, "payment completed; reservation left as it is");
            return Ok(());
        };
        let confirmed_now = store::transition(conn, id, &[current.state], next, now_ms())
            .map_err(StoreError::reject_refusal)?
            .ok_or_else(|| HandleError::Retry("reservation changed concurrently".into()))?;
        outbox::enqueue(conn, &confirmed(&confirmed_now))?;
        tracing::info!(reservation = %id, "reservation confirmed by payment");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReservationState;

    #[test]
    fn placed_event_carries_the_product_name_and_version() {
        let reservation = Reservation {
            id: Id::parse(3, "id").expect("id"),
            product_id: Id::parse(9, "id").expect("id"),
            customer_id: "kim".into(),
            state: ReservationState::Reserved,
            version: 1,
            seller_id: "lee".into(),
        };
        let event = placed(&reservation, "Phone".into());
        assert_eq!(
            event.subject,
            "reserve.events.reservation.ReservationPlaced"
        );
        let envelope: EventEnvelope =
            prost::Message::decode(event.payload.as_slice()).expect("decodes");
        assert_eq!(envelope.aggregate_version, 1);
        let opened = open::<ReservationPlaced>(&envelope)
            .expect("type")
            .expect("payload");
        assert_eq!(opened.product_name, "Phone");
    }
}
