//! Status names on the REST surface. Output always shows names (`AVAILABLE`, from the proto
//! enums through [`StatusName`]); input also accepts the original API's codes (`01`, `02`,
//! `soldOut`) and a few spellings of it.

use reserve_proto::StatusName;
use reserve_proto::payment::v1::PaymentStatus;
use reserve_proto::product::v1::ProductStatus;
use reserve_proto::reservation::v1::ReservationStatus;

use crate::api_error::ApiError;

/// Parses a product status given by name or original code.
pub fn parse_product_status(raw: &str) -> Result<ProductStatus, ApiError> {
    match raw.trim().to_ascii_uppercase().as_str() {
        "01" => Ok(ProductStatus::Available),
        "02" => Ok(ProductStatus::Pending),
        "SOLDOUT" => Ok(ProductStatus::SoldOut),
        name => known(ProductStatus::from_name(name)).ok_or_else(|| ApiError::bad_request(format!(
            "unknown productStatus {raw:?}: use AVAILABLE (01), PENDING (02) or SOLD_OUT (soldOut)"
        ))),
    }
}

/// The name shown for a product status.
pub fn product_status_name(status: ProductStatus) -> &'static str {
    status.name()
}

/// Parses a reservation status given by name or original code.
pub fn parse_reservation_status(raw: &str) -> Result<ReservationStatus, ApiError> {
    match raw.trim().to_ascii_uppercase().as_str() {
        "01" => Ok(ReservationStatus::Reserved),
        "02" | "CANCELED" => Ok(ReservationStatus::Cancelled),
        name => known(ReservationStatus::from_name(name)).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown reservationStatus {raw:?}: use RESERVED (01), CANCELLED (02) or CONFIRMED"
            ))
        }),
    }
}

/// The name shown for a reservation status.
pub fn reservation_status_name(status: ReservationStatus) -> &'static str {
    status.name()
}

/// Parses a payment status given by name or original code.
pub fn parse_payment_status(raw: &str) -> Result<PaymentStatus, ApiError> {
    match raw.trim().to_ascii_uppercase().as_str() {
        "01" => Ok(PaymentStatus::Unpaid),
        "02" => Ok(PaymentStatus::Paid),
        name => known(PaymentStatus::from_name(name)).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown paymentStatus {raw:?}: use UNPAID (01), PAID (02), VOIDED or REFUNDED"
            ))
        }),
    }
}

/// The name shown for a payment status.
pub fn payment_status_name(status: PaymentStatus) -> &'static str {
    status.name()
}

/// A status named by the caller, never the wire's "unspecified" placeholder (value 0, each
/// enum's default).
fn known<S: StatusName + Default + PartialEq>(status: Option<S>) -> Option<S> {
    status.filter(|status| *status != S::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wires_placeholder_is_not_a_status() {
        assert!(parse_product_status("UNSPECIFIED").is_err());
        assert!(parse_reservation_status("unspecified").is_err());
        assert!(parse_payment_status("UNSPECIFIED").is_err());
    }

    #[test]
    fn original_codes_and_names_are_accepted() {
        assert_eq!(parse_product_status("01"), Ok(ProductStatus::Available));
        assert_eq!(
            parse_product_status("available"),
            Ok(ProductStatus::Available)
        );
        assert_eq!(parse_product_status("02"), Ok(ProductStatus::Pending));
        assert_eq!(parse_product_status("soldOut"), Ok(ProductStatus::SoldOut));
        assert_eq!(parse_product_status("SOLD_OUT"), Ok(ProductStatus::SoldOut));
        assert_eq!(
            parse_reservation_status("01"),
            Ok(ReservationStatus::Reserved)
        );
        assert_eq!(
            parse_reservation_status("02"),
            Ok(ReservationStatus::Cancelled)
        );
        assert_eq!(
            parse_reservation_status("Cancelled"),
            Ok(ReservationStatus::Cancelled)
        );
    }

    #[test]
    fn unknown_codes_are_refused_with_the_choices() {
        let err = parse_product_status("03").expect_err("unknown");
        assert!(err.message.contains("AVAILABLE (01)"), "{}", err.message);
        assert!(parse_reservation_status("").is_err());
    }

    #[test]
    fn payment_codes_are_accepted() {
        assert_eq!(parse_payment_status("02"), Ok(PaymentStatus::Paid));
        assert_eq!(parse_payment_status("paid"), Ok(PaymentStatus::Paid));
        assert_eq!(parse_payment_status("01"), Ok(PaymentStatus::Unpaid));
        assert!(parse_payment_status("03").is_err());
        for status in [
            PaymentStatus::Unpaid,
            PaymentStatus::Paid,
            PaymentStatus::Voided,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(
                parse_payment_status(payment_status_name(status)),
                Ok(status)
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for status in [
            ProductStatus::Available,
            ProductStatus::Pending,
            ProductStatus::SoldOut,
        ] {
            assert_eq!(
                parse_product_status(product_status_name(status)),
                Ok(status)
            );
        }
        for status in [
            ReservationStatus::Reserved,
            ReservationStatus::Cancelled,
            ReservationStatus::Confirmed,
        ] {
            assert_eq!(
                parse_reservation_status(reservation_status_name(status)),
                Ok(status)
            );
        }
    }
}
