//! What each event means for a buyer's my page, as pure functions: no I/O, no diesel, no tonic.

use prost::Message;
use reserve_proto::events::DomainEvent;
use reserve_proto::events::v1::{
    EventEnvelope, PaymentCompleted, PaymentRefunded, PaymentRequested, PaymentVoided,
    ReservationCancelled, ReservationConfirmed, ReservationPlaced,
};

/// One event's change to one my-page entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The reservation half changed.
    Reservation {
        /// The entry.
        reservation_id: i64,
        /// Its product.
        product_id: i64,
        /// The product's name, when the event carries it.
        product_name: Option<String>,
        /// The buyer.
        customer_id: String,
        /// The new reservation status name.
        status: &'static str,
        /// The reservation's version after the change.
        version: i64,
    },
    /// The payment half changed.
    Payment {
        /// The entry.
        reservation_id: i64,
        /// The product, when the event carries it.
        product_id: Option<i64>,
        /// The payment.
        payment_id: i64,
        /// The buyer.
        customer_id: String,
        /// The new payment status name.
        status: &'static str,
        /// The payment's version after the change.
        version: i64,
    },
}

impl Change {
    /// The entry it changes.
    pub fn reservation_id(&self) -> i64 {
        match self {
            Self::Reservation { reservation_id, .. } | Self::Payment { reservation_id, .. } => {
                *reservation_id
            }
        }
    }

    /// The buyer whose page it changes.
    pub fn customer_id(&self) -> &str {
        match self {
            Self::Reservation { customer_id, .. } | Self::Payment { customer_id, .. } => {
                customer_id
            }
        }
    }
}

/// Reads the my-page change out of an event; `None` for events my page does not show.
pub fn change_of(event: &EventEnvelope) -> Result<Option<Change>, prost::DecodeError> {
    let version = event.aggregate_version;
    let payload = event.payload.as_slice();
    let reservation =
        |reservation_id, product_id, product_name, customer_id, status| Change::Reservation {
            reservation_id,
            product_id,
            product_name,
            customer_id,
            status,
            version,
        };
    let payment = |reservation_id, product_id, payment_id, customer_id, status| Change::Payment {
        reservation_id,
        product_id,
        payment_id,
        customer_id,
        status,
        version,
    };
    let change = match event.event_type.as_str() {
        <ReservationPlaced as DomainEvent>::EVENT_TYPE => {
            let e = ReservationPlaced::decode(payload)?;
            let name = Some(e.product_name);
            reservation(
                e.reservation_id,
                e.product_id,
                name,
                e.customer_id,
                "RESERVED",
            )
        }
        <ReservationCancelled as DomainEvent>::EVENT_TYPE => {
            let e = ReservationCancelled::decode(payload)?;
            reservation(
                e.reservation_id,
                e.product_id,
                None,
                e.customer_id,
                "CANCELLED",
            )
        }
        <ReservationConfirmed as DomainEvent>::EVENT_TYPE => {
            let e = ReservationConfirmed::decode(payload)?;
            reservation(
                e.reservation_id,
                e.product_id,
                None,
                e.customer_id,
                "CONFIRMED",
            )
        }
        <PaymentRequested as DomainEvent>::EVENT_TYPE => {
            let e = PaymentRequested::decode(payload)?;
            let product = Some(e.product_id);
            payment(
                e.reservation_id,
                product,
                e.payment_id,
                e.customer_id,
                "UNPAID",
            )
        }
        <PaymentCompleted as DomainEvent>::EVENT_TYPE => {
            let e = PaymentCompleted::decode(payload)?;
            let product = Some(e.product_id);
            payment(
                e.reservation_id,
                product,
                e.payment_id,
                e.customer_id,
                "PAID",
            )
        }
        <PaymentVoided as DomainEvent>::EVENT_TYPE => {
            let e = PaymentVoided::decode(payload)?;
            payment(
                e.reservation_id,
                None,
                e.payment_id,
                e.customer_id,
                "VOIDED",
            )
        }
        <PaymentRefunded as DomainEvent>::EVENT_TYPE => {
            let e = PaymentRefunded::decode(payload)?;
            payment(
                e.reservation_id,
                None,
                e.payment_id,
                e.customer_id,
                "REFUNDED",
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(change))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::events::OutgoingEvent;
    use prost::Message;

    fn envelope(event: OutgoingEvent) -> EventEnvelope {
        EventEnvelope::decode(event.payload.as_slice()).expect("envelope")
    }

    #[test]
    fn placement_fills_the_reservation_half_with_the_product_name() {
        let placed = ReservationPlaced {
            seller_id: "lee".into(),
            reservation_id: 1,
            product_id: 3,
            customer_id: "kim".into(),
            product_name: "Coffee".into(),
        };
        let change = change_of(&envelope(OutgoingEvent::new(&placed, 1))).expect("decodes");
        assert_eq!(
            change,
            Some(Change::Reservation {
                reservation_id: 1,
                product_id: 3,
                product_name: Some("Coffee".into()),
                customer_id: "kim".into(),
                status: "RESERVED",
                version: 1,
            })
        );
    }

    #[test]
    fn payment_events_fill_the_payment_half() {
        let paid = PaymentCompleted {
            payment_id: 5,
            reservation_id: 1,
            product_id: 3,
            customer_id: "kim".into(),
        };
        let change = change_of(&envelope(OutgoingEvent::new(&paid, 2)))
            .expect("decodes")
            .expect("shown");
        assert!(matches!(
            change,
            Change::Payment {
                status: "PAID",
                version: 2,
                payment_id: 5,
                ..
            }
        ));
        assert_eq!((change.reservation_id(), change.customer_id()), (1, "kim"));
    }
}
