//! Payments and their lifecycle, as pure types: no I/O, no diesel, no tonic.

use std::fmt;

use reserve_proto::StatusName;
use reserve_proto::payment::v1::PaymentStatus as WireStatus;

/// Where a payment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Created for a reservation, waiting for the buyer.
    Unpaid,
    /// Paid.
    Paid,
    /// The reservation was cancelled before payment.
    Voided,
    /// The reservation was cancelled after payment; the money goes back.
    Refunded,
}

impl PaymentStatus {
    /// States a buyer can pay from.
    pub const PAYABLE: [PaymentStatus; 1] = [Self::Unpaid];

    /// Every status.
    pub const ALL: [PaymentStatus; 4] = [Self::Unpaid, Self::Paid, Self::Voided, Self::Refunded];

    /// The API's value for it: the one mapping between the two.
    pub fn to_wire(self) -> WireStatus {
        match self {
            Self::Unpaid => WireStatus::Unpaid,
            Self::Paid => WireStatus::Paid,
            Self::Voided => WireStatus::Voided,
            Self::Refunded => WireStatus::Refunded,
        }
    }

    /// The name stored and shown: the API's ([`StatusName`]).
    pub fn as_str(self) -> &'static str {
        self.to_wire().name()
    }

    /// Parses a stored name.
    pub fn from_stored(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// UNPAID → PAID; paying anything else is an illegal transition with a reason a buyer
    /// understands.
    pub fn pay(self, id: Id) -> Result<PaymentStatus, PaymentError> {
        match self {
            Self::Unpaid => Ok(Self::Paid),
            Self::Paid => Err(PaymentError::IllegalTransition(format!(
                "payment {id} is already PAID"
            ))),
            Self::Voided | Self::Refunded => Err(PaymentError::IllegalTransition(format!(
                "payment {id} is {self}: its reservation was cancelled"
            ))),
        }
    }

    /// What the reservation's cancellation does: UNPAID → VOIDED, PAID → REFUNDED; an already
    /// voided or refunded payment stays as it is (a redelivered cancellation).
    pub fn on_cancellation(self) -> Option<PaymentStatus> {
        match self {
            Self::Unpaid => Some(Self::Voided),
            Self::Paid => Some(Self::Refunded),
            Self::Voided | Self::Refunded => None,
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use mesh_core::ids::{Id, InvalidId};

/// A payment as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Its id.
    pub id: Id,
    /// The reservation it pays for.
    pub reservation_id: Id,
    /// The reserved product.
    pub product_id: Id,
    /// The buyer.
    pub customer_id: String,
    /// Where it is.
    pub status: PaymentStatus,
    /// How many changes it has had, starting at 1.
    pub version: i64,
    /// The product's seller ('' when unknown).
    pub seller_id: String,
}

/// Every way a payment operation can be refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PaymentError {
    /// A zero or negative id.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// No payment has this id.
    #[error("payment {0} not found")]
    NotFound(Id),
    /// The payment's state does not allow the change.
    #[error("{0}")]
    IllegalTransition(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_the_apis_and_read_back() {
        let names: Vec<&str> = PaymentStatus::ALL
            .iter()
            .map(|state| state.as_str())
            .collect();
        assert_eq!(names, ["UNPAID", "PAID", "VOIDED", "REFUNDED"]);
        for state in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::from_stored(state.as_str()), Some(state));
        }
        assert_eq!(PaymentStatus::from_stored("reserved"), None);
    }

    fn id() -> Id {
        Id::parse(1, "payment id").expect("id")
    }

    #[test]
    fn only_unpaid_payments_can_be_paid() {
        assert_eq!(PaymentStatus::Unpaid.pay(id()), Ok(PaymentStatus::Paid));
        let twice = PaymentStatus::Paid.pay(id()).expect_err("paid twice");
        assert_eq!(twice.to_string(), "payment 1 is already PAID");
        let voided = PaymentStatus::Voided.pay(id()).expect_err("voided");
        assert!(voided.to_string().contains("cancelled"), "{voided}");
        assert!(PaymentStatus::Refunded.pay(id()).is_err());
        for status in PaymentStatus::PAYABLE {
            assert!(status.pay(id()).is_ok());
        }
    }

    #[test]
    fn cancellation_voids_unpaid_and_refunds_paid() {
        assert_eq!(
            PaymentStatus::Unpaid.on_cancellation(),
            Some(PaymentStatus::Voided)
        );
        assert_eq!(
            PaymentStatus::Paid.on_cancellation(),
            Some(PaymentStatus::Refunded)
        );
        assert_eq!(PaymentStatus::Voided.on_cancellation(), None);
        assert_eq!(PaymentStatus::Refunded.on_cancellation(), None);
    }

    #[test]
    fn statuses_round_trip_through_storage() {
        for status in [
            PaymentStatus::Unpaid,
            PaymentStatus::Paid,
            PaymentStatus::Voided,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(PaymentStatus::from_stored(status.as_str()), Some(status));
        }
    }
}
