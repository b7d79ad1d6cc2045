//! Products and their lifecycle, as pure types: no I/O, no diesel, no tonic.
//!
//! The store writes only transitions these functions allow, and it writes them as conditional
//! updates, so two concurrent reservations can never both take the same product.

use std::fmt;

use reserve_proto::StatusName;
use reserve_proto::product::v1::ProductStatus as WireStatus;

/// Where a product is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProductStatus {
    /// Free to reserve.
    Available,
    /// Locked by one reservation, awaiting payment.
    Pending,
    /// Paid for.
    SoldOut,
}

impl ProductStatus {
    /// Every status.
    pub const ALL: [ProductStatus; 3] = [Self::Available, Self::Pending, Self::SoldOut];

    /// The API's value for it: the one mapping between the two.
    pub fn to_wire(self) -> WireStatus {
        match self {
            Self::Available => WireStatus::Available,
            Self::Pending => WireStatus::Pending,
            Self::SoldOut => WireStatus::SoldOut,
        }
    }

    /// The status an API value names; `None` for the unspecified placeholder.
    pub fn from_wire(wire: WireStatus) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.to_wire() == wire)
    }

    /// The name stored in the database and shown to users: the API's ([`StatusName`]).
    pub fn as_str(self) -> &'static str {
        self.to_wire().name()
    }

    /// Parses a stored name.
    pub fn from_stored(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// What the reservation holding a product can do to it through events.
impl ProductStatus {
    /// A cancelled reservation frees its product, paid for or not (the payment is refunded).
    pub const FREED_BY_CANCELLATION: [ProductStatus; 2] = [Self::Pending, Self::SoldOut];
    /// A completed payment sells a product that is still locked for that reservation.
    pub const SOLD_BY_PAYMENT: [ProductStatus; 1] = [Self::Pending];
}

impl fmt::Display for ProductStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use mesh_core::ids::{Id, InvalidId};

/// A product name: trimmed, 1 to [`ProductName::MAX_CHARS`] characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    /// Longest name accepted.
    pub const MAX_CHARS: usize = 200;

    /// Parses user input into a name that is valid by construction.
    pub fn parse(raw: &str) -> Result<Self, ProductError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ProductError::InvalidName("must not be empty".into()));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(ProductError::InvalidName(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if let Some(reason) = mesh_core::text::explain_deceptive(name) {
            return Err(ProductError::InvalidName(reason));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// Its id.
    pub id: Id,
    /// Its name.
    pub name: String,
    /// Its lifecycle state.
    pub status: ProductStatus,
    /// The reservation holding it while PENDING or SOLD_OUT.
    pub holder: Option<Id>,
    /// The seller who registered it (empty for products from before sellers were recorded).
    pub seller: String,
}

impl Product {
    /// Whether `reservation` may lock this product: it is AVAILABLE, or already locked by that
    /// same reservation (a retried call after a lost response must succeed again).
    pub fn check_reserve(&self, reservation: Id) -> Result<(), ProductError> {
        match (self.status, self.holder) {
            (ProductStatus::Available, _) => Ok(()),
            (ProductStatus::Pending, Some(holder)) if holder == reservation => Ok(()),
            (status, _) => Err(ProductError::NotAvailable {
                product: self.id,
                status,
            }),
        }
    }
}

/// The initial status of a new product: AVAILABLE, whether given or not.
pub fn initial_status(requested: Option<ProductStatus>) -> Result<ProductStatus, ProductError> {
    match requested {
        None | Some(ProductStatus::Available) => Ok(ProductStatus::Available),
        Some(other) => Err(ProductError::InvalidInitialStatus(other)),
    }
}

/// Every way a product operation can be refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProductError {
    /// An id that is zero or negative.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// The product name is unusable.
    #[error("product name {0}")]
    InvalidName(String),
    /// A new product was asked to start in another state than AVAILABLE.
    #[error("a new product starts AVAILABLE, not {0}")]
    InvalidInitialStatus(ProductStatus),
    /// No product has this id.
    #[error("product {0} not found")]
    NotFound(Id),
    /// The product is taken or sold.
    #[error("product {product} is not available (it is {status})")]
    NotAvailable {
        /// The product.
        product: Id,
        /// Its current status.
        status: ProductStatus,
    },
    /// The reservation gave its lock up (released or cancelled) before this lock arrived: a
    /// late lock must not take the product for a reservation that no longer exists.
    #[error("reservation {0} was already released; a late lock cannot take the product")]
    ReservationReleased(Id),
    /// The caller's deadline passed before the lock could commit: nothing was locked, since
    /// the caller already treats the call as failed.
    #[error("the caller's deadline passed before the lock committed; nothing was locked")]
    DeadlinePassed,
}

/// Whether a lock may still commit at `now`, for a caller whose deadline is `deadline`
/// (none: the caller set no deadline).
pub fn check_in_time(
    deadline: Option<std::time::Instant>,
    now: std::time::Instant,
) -> Result<(), ProductError> {
    match deadline {
        Some(deadline) if now >= deadline => Err(ProductError::DeadlinePassed),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_the_apis_and_read_back() {
        let names: Vec<&str> = ProductStatus::ALL
            .iter()
            .map(|state| state.as_str())
            .collect();
        assert_eq!(names, ["AVAILABLE", "PENDING", "SOLD_OUT"]);
        for state in ProductStatus::ALL {
            assert_eq!(ProductStatus::from_stored(state.as_str()), Some(state));
        }
        assert_eq!(ProductStatus::from_stored("reserved"), None);
    }

    fn id(raw: i64) -> Id {
        Id::parse(raw, "id").expect("positive id")
    }

    fn product(status: ProductStatus, holder: Option<i64>) -> Product {
        Product {
            id: id(1),
            name: "Phone".into(),
            status,
            holder: holder.map(id),
            seller: "lee".into(),
        }
    }

    #[test]
    fn available_product_can_be_reserved() {
        assert_eq!(
            product(ProductStatus::Available, None).check_reserve(id(7)),
            Ok(())
        );
    }

    #[test]
    fn reserving_again_for_the_same_reservation_succeeds() {
        assert_eq!(
            product(ProductStatus::Pending, Some(7)).check_reserve(id(7)),
            Ok(())
        );
    }

    #[test]
    fn another_reservation_is_refused() {
        let err = product(ProductStatus::Pending, Some(7))
            .check_reserve(id(8))
            .expect_err("taken");
        assert_eq!(
            err,
            ProductError::NotAvailable {
                product: id(1),
                status: ProductStatus::Pending
            }
        );
    }

    #[test]
    fn sold_out_product_is_refused_even_to_its_buyer() {
        assert!(
            product(ProductStatus::SoldOut, Some(7))
                .check_reserve(id(7))
                .is_err()
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            ProductName::parse("  Phone ").expect("valid").as_str(),
            "Phone"
        );
        assert!(ProductName::parse("   ").is_err());
        assert!(ProductName::parse(&"x".repeat(201)).is_err());
        assert!(ProductName::parse("bad\u{0}name").is_err());
    }

    #[test]
    fn a_lock_commits_only_before_the_callers_deadline() {
        let now = std::time::Instant::now();
        assert_eq!(check_in_time(None, now), Ok(()));
        assert_eq!(
            check_in_time(Some(now + std::time::Duration::from_millis(1)), now),
            Ok(())
        );
        assert_eq!(
            check_in_time(Some(now), now),
            Err(ProductError::DeadlinePassed)
        );
    }

    #[test]
    fn new_products_start_available() {
        assert_eq!(initial_status(None), Ok(ProductStatus::Available));
        assert_eq!(
            initial_status(Some(ProductStatus::Available)),
            Ok(ProductStatus::Available)
        );
        assert!(initial_status(Some(ProductStatus::SoldOut)).is_err());
    }
}
