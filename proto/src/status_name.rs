//! Status names as stored, shown and logged everywhere (`RESERVED`, `PAID`), derived from the
//! proto enums (`RESERVATION_STATUS_RESERVED`): the one place a status gets its name.

use crate::payment::v1::PaymentStatus;
use crate::product::v1::ProductStatus;
use crate::reservation::v1::ReservationStatus;

/// A status enum of the API whose values have short names.
pub trait StatusName: Sized + Copy {
    /// The short name: the proto value's name without its enum's prefix.
    fn name(self) -> &'static str;
    /// The value a short name stands for (exact, upper case); `None` for unknown names.
    fn from_name(name: &str) -> Option<Self>;
}

macro_rules! status_names {
    ($($status:ident => $prefix:literal;)*) => {
        $(
            impl StatusName for $status {
                fn name(self) -> &'static str {
                    let full = self.as_str_name();
                    full.strip_prefix($prefix).unwrap_or(full)
                }

                fn from_name(name: &str) -> Option<Self> {
                    Self::from_str_name(&format!("{}{name}", $prefix))
                }
            }
        )*
    };
}

status_names! {
    ProductStatus => "PRODUCT_STATUS_";
    ReservationStatus => "RESERVATION_STATUS_";
    PaymentStatus => "PAYMENT_STATUS_";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_the_enum_prefix_and_come_back() {
        assert_eq!(ReservationStatus::Reserved.name(), "RESERVED");
        assert_eq!(ProductStatus::SoldOut.name(), "SOLD_OUT");
        assert_eq!(PaymentStatus::Paid.name(), "PAID");
        assert_eq!(
            PaymentStatus::from_name("REFUNDED"),
            Some(PaymentStatus::Refunded)
        );
        assert_eq!(
            ProductStatus::from_name("SOLD_OUT"),
            Some(ProductStatus::SoldOut)
        );
        assert_eq!(ReservationStatus::from_name("reserved"), None);
        assert_eq!(ReservationStatus::from_name("PAID"), None);
    }
}
