//! A buyer's my page as pure values: its entries, the change each event makes to one, and why
//! a request is refused. No I/O, no diesel, no tonic.
//!
//! The statuses are the ones reservation-svc and payment-svc announce in their events: this
//! read model mirrors them, so it keeps the API's enums rather than inventing its own.

use reserve_proto::events::v1::EventEnvelope;
use reserve_proto::events::{Event, Moved, StatusChange};

pub use mesh_core::ids::{Id, InvalidId};
pub use reserve_proto::payment::v1::PaymentStatus;
pub use reserve_proto::reservation::v1::ReservationStatus;

/// One buyer's reservation and its payment, as the events so far have shown them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The reservation.
    pub reservation_id: Id,
    /// Its product, once an event has carried it.
    pub product_id: Option<Id>,
    /// The product's name ('' until an event carries it).
    pub product_name: String,
    /// The buyer.
    pub customer_id: String,
    /// The reservation's status, once its own event has arrived.
    pub reservation_status: Option<ReservationStatus>,
    /// The version of the reservation event shown (0: none yet).
    pub reservation_version: i64,
    /// The payment, once its event has arrived.
    pub payment_id: Option<Id>,
    /// The payment's status, once its event has arrived.
    pub payment_status: Option<PaymentStatus>,
    /// The version of the payment event shown (0: none yet).
    pub payment_version: i64,
    /// When the entry last changed, Unix milliseconds.
    pub updated_at_ms: i64,
}

/// One event's change to one my-page entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The reservation half changed.
    Reservation {
        /// The entry.
        reservation_id: Id,
        /// Its product, when the event carries one.
        product_id: Option<Id>,
        /// The product's name, when the event carries it.
        product_name: Option<String>,
        /// The buyer.
        customer_id: String,
        /// The new reservation status.
        status: ReservationStatus,
        /// The reservation's version after the change.
        version: i64,
    },
    /// The payment half changed.
    Payment {
        /// The entry.
        reservation_id: Id,
        /// The product, when the event carries it.
        product_id: Option<Id>,
        /// The payment.
        payment_id: Id,
        /// The buyer.
        customer_id: String,
        /// The new payment status.
        status: PaymentStatus,
        /// The payment's version after the change.
        version: i64,
    },
}

impl Change {
    /// The entry it changes.
    pub fn reservation_id(&self) -> Id {
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

    /// The product, when the event carries it.
    pub fn product_id(&self) -> Option<Id> {
        match self {
            Self::Reservation { product_id, .. } | Self::Payment { product_id, .. } => *product_id,
        }
    }
}

/// Every way a my-page request is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MyPageError {
    /// A zero or negative id.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// No entry for this reservation (yet: the page follows events).
    #[error("my page has no reservation {0}")]
    NotFound(Id),
}

/// An event this service cannot read: it is rejected, never applied in part.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableEvent {
    /// Its payload is not the protobuf its type names.
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
    /// It names a reservation or payment by a zero or negative id.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
}

/// Reads the my-page change out of an event (the shared table of [`StatusChange::of`]);
/// `None` for events that move no buyer's status.
pub fn change_of(event: &EventEnvelope) -> Result<Option<Change>, UnreadableEvent> {
    let version = event.aggregate_version;
    let Some(decoded) = Event::decode(&event.event_type, &event.payload)? else {
        return Ok(None);
    };
    let Some(StatusChange {
        customer_id,
        reservation_id,
        moved,
    }) = StatusChange::of(decoded)
    else {
        return Ok(None);
    };
    let reservation_id = Id::parse(reservation_id, "reservation id")?;
    // Only some events carry the product; a missing one (0) is filled in by a later event.
    let product = |raw: i64| Id::parse(raw, "product id").ok();
    Ok(Some(match moved {
        Moved::Reservation {
            product_id,
            status,
            product_name,
        } => Change::Reservation {
            reservation_id,
            product_id: product(product_id),
            product_name,
            customer_id,
            status,
            version,
        },
        Moved::Payment {
            payment_id,
            product_id,
            status,
        } => Change::Payment {
            reservation_id,
            product_id: product_id.and_then(product),
            payment_id: Id::parse(payment_id, "payment id")?,
            customer_id,
            status,
            version,
        },
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

    fn id(raw: i64) -> Id {
        Id::parse(raw, "id").expect("positive")
    }

    fn placed(reservation_id: i64) -> ReservationPlaced {
        ReservationPlaced {
            seller_id: "lee".into(),
            reservation_id,
            product_id: 3,
            customer_id: "kim".into(),
            product_name: "Coffee".into(),
        }
    }

    #[test]
    fn placement_fills_the_reservation_half_with_the_product_name() {
        let change = change_of(&envelope(OutgoingEvent::new(&placed(1), 1))).expect("decodes");
        assert_eq!(
            change,
            Some(Change::Reservation {
                reservation_id: id(1),
                product_id: Some(id(3)),
                product_name: Some("Coffee".into()),
                customer_id: "kim".into(),
                status: ReservationStatus::Reserved,
                version: 1,
            })
        );
    }

    #[test]
    fn payment_events_fill_the_payment_half() {
        let paid = PaymentCompleted {
            payment_id: 5,
            reservation_id: 1,
            product_id: 0,
            customer_id: "kim".into(),
        };
        let change = change_of(&envelope(OutgoingEvent::new(&paid, 2)))
            .expect("decodes")
            .expect("shown");
        assert_eq!(
            change,
            Change::Payment {
                reservation_id: id(1),
                product_id: None,
                payment_id: id(5),
                customer_id: "kim".into(),
                status: PaymentStatus::Paid,
                version: 2,
            }
        );
        assert_eq!(
            (change.reservation_id(), change.customer_id()),
            (id(1), "kim")
        );
    }

    #[test]
    fn an_event_without_its_reservation_is_unreadable() {
        let err = change_of(&envelope(OutgoingEvent::new(&placed(0), 1))).expect_err("id 0");
        assert_eq!(
            err.to_string(),
            "reservation id must be a positive number, got 0"
        );
    }
}
