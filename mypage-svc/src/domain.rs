//! What each event means for a buyer's my page, as pure functions: no I/O, no diesel, no tonic.

use reserve_proto::StatusName;
use reserve_proto::events::v1::EventEnvelope;
use reserve_proto::events::{Event, Moved, StatusChange};

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

/// Reads the my-page change out of an event (the shared table of
/// [`StatusChange::of`]); `None` for events that move no buyer's status.
pub fn change_of(event: &EventEnvelope) -> Result<Option<Change>, prost::DecodeError> {
    let version = event.aggregate_version;
    let Some(decoded) = Event::decode(&event.event_type, &event.payload)? else {
        return Ok(None);
    };
    Ok(StatusChange::of(decoded).map(|change| {
        let StatusChange {
            customer_id,
            reservation_id,
            moved,
        } = change;
        match moved {
            Moved::Reservation {
                product_id,
                status,
                product_name,
            } => Change::Reservation {
                reservation_id,
                product_id,
                product_name,
                customer_id,
                status: status.name(),
                version,
            },
            Moved::Payment {
                payment_id,
                product_id,
                status,
            } => Change::Payment {
                reservation_id,
                product_id,
                payment_id,
                customer_id,
                status: status.name(),
                version,
            },
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::events::OutgoingEvent;
    use prost::Message;
    use reserve_proto::events::v1::{PaymentCompleted, ReservationPlaced};

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
