//! What an event means for the buyer it concerns: the status their reservation or payment
//! moved to. One table, beside the event registry, that every read model (my page, notices)
//! derives from: [`StatusChange::of`] matches every event, so registering a new one fails to
//! compile here until it says whether it changes a status.

use super::Event;
use crate::payment::v1::PaymentStatus;
use crate::reservation::v1::ReservationStatus;

/// A buyer's reservation or payment moved to a new status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The buyer.
    pub customer_id: String,
    /// The reservation it is about (a payment's reservation too).
    pub reservation_id: i64,
    /// What moved, and where to.
    pub moved: Moved,
}

/// The half of a buyer's reservation that moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Moved {
    /// The reservation itself.
    Reservation {
        /// Its product.
        product_id: i64,
        /// Its new status.
        status: ReservationStatus,
        /// The product's name, when the event carries it.
        product_name: Option<String>,
    },
    /// Its payment.
    Payment {
        /// The payment.
        payment_id: i64,
        /// The product, when the event carries it.
        product_id: Option<i64>,
        /// Its new status.
        status: PaymentStatus,
    },
}

impl StatusChange {
    /// The status change `event` is; `None` for an event that moves no buyer's status (every
    /// event registered today moves one; a catalogue event would not).
    pub fn of(event: Event) -> Option<Self> {
        let reservation = |customer_id, reservation_id, product_id, status, product_name| Self {
            customer_id,
            reservation_id,
            moved: Moved::Reservation {
                product_id,
                status,
                product_name,
            },
        };
        let payment = |customer_id, reservation_id, product_id, payment_id, status| Self {
            customer_id,
            reservation_id,
            moved: Moved::Payment {
                payment_id,
                product_id,
                status,
            },
        };
        Some(match event {
            Event::ReservationPlaced(e) => reservation(
                e.customer_id,
                e.reservation_id,
                e.product_id,
                ReservationStatus::Reserved,
                Some(e.product_name),
            ),
            Event::ReservationCancelled(e) => reservation(
                e.customer_id,
                e.reservation_id,
                e.product_id,
                ReservationStatus::Cancelled,
                None,
            ),
            Event::ReservationConfirmed(e) => reservation(
                e.customer_id,
                e.reservation_id,
                e.product_id,
                ReservationStatus::Confirmed,
                None,
            ),
            Event::PaymentRequested(e) => payment(
                e.customer_id,
                e.reservation_id,
                Some(e.product_id),
                e.payment_id,
                PaymentStatus::Unpaid,
            ),
            Event::PaymentCompleted(e) => payment(
                e.customer_id,
                e.reservation_id,
                Some(e.product_id),
                e.payment_id,
                PaymentStatus::Paid,
            ),
            Event::PaymentVoided(e) => payment(
                e.customer_id,
                e.reservation_id,
                None,
                e.payment_id,
                PaymentStatus::Voided,
            ),
            Event::PaymentRefunded(e) => payment(
                e.customer_id,
                e.reservation_id,
                None,
                e.payment_id,
                PaymentStatus::Refunded,
            ),
        })
    }
}
