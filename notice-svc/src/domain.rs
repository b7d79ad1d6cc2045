//! Which events become notifications, and the delivery rules, as pure functions.

use std::time::Duration;

use mesh_core::events::open;
use reserve_proto::events::v1::{
    EventEnvelope, PaymentCompleted, PaymentRefunded, PaymentRequested, PaymentVoided,
    ReservationCancelled, ReservationConfirmed, ReservationPlaced,
};

use crate::templates::NoticeFacts;

/// Where a notification's delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Waiting for (another) attempt.
    Pending,
    /// Delivered.
    Sent,
    /// Given up after the last attempt; the reason is recorded.
    Failed,
}

impl Delivery {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
        }
    }
}

/// What to do after a failed attempt number `attempts` (1-based) out of `max_attempts`:
/// retry after an exponential back-off (200 ms doubling, capped at 30 s), or give up.
pub fn after_failure(attempts: i32, max_attempts: i32) -> Option<Duration> {
    if attempts >= max_attempts {
        return None;
    }
    let exponent = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    Some((Duration::from_millis(200) * 2u32.pow(exponent)).min(Duration::from_secs(30)))
}

/// The buyer and facts of the notification an event calls for; `None` when it calls for none.
pub fn notice_of(
    event: &EventEnvelope,
) -> Result<Option<(String, NoticeFacts)>, prost::DecodeError> {
    let facts = |event_type, reservation_id, product_name, payment_id| NoticeFacts {
        event_type,
        reservation_id,
        product_name,
        payment_id,
    };
    macro_rules! reservation_event {
        ($type:ty, $name:literal, $product:expr) => {
            if let Some(e) = open::<$type>(event) {
                let e = e?;
                #[allow(clippy::redundant_closure_call)]
                let product = ($product)(&e);
                return Ok(Some((
                    e.customer_id.clone(),
                    facts($name, e.reservation_id, product, None),
                )));
            }
        };
    }
    macro_rules! payment_event {
        ($type:ty, $name:literal) => {
            if let Some(e) = open::<$type>(event) {
                let e = e?;
                return Ok(Some((
                    e.customer_id.clone(),
                    facts($name, e.reservation_id, None, Some(e.payment_id)),
                )));
            }
        };
    }
    reservation_event!(
        ReservationPlaced,
        "ReservationPlaced",
        |e: &ReservationPlaced| Some(e.product_name.clone())
    );
    reservation_event!(
        ReservationCancelled,
        "ReservationCancelled",
        |_: &ReservationCancelled| None
    );
    reservation_event!(
        ReservationConfirmed,
        "ReservationConfirmed",
        |_: &ReservationConfirmed| None
    );
    payment_event!(PaymentRequested, "PaymentRequested");
    payment_event!(PaymentCompleted, "PaymentCompleted");
    payment_event!(PaymentVoided, "PaymentVoided");
    payment_event!(PaymentRefunded, "PaymentRefunded");
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::events::OutgoingEvent;
    use prost::Message;

    #[test]
    fn back_off_doubles_then_gives_up() {
        assert_eq!(after_failure(1, 5), Some(Duration::from_millis(200)));
        assert_eq!(after_failure(2, 5), Some(Duration::from_millis(400)));
        assert_eq!(after_failure(4, 5), Some(Duration::from_millis(1600)));
        assert_eq!(after_failure(5, 5), None);
        assert_eq!(after_failure(15, 99), Some(Duration::from_secs(30)));
    }

    #[test]
    fn every_status_change_event_calls_for_a_notice() {
        let placed = ReservationPlaced {
            seller_id: "lee".into(),
            reservation_id: 2,
            product_id: 1,
            customer_id: "kim".into(),
            product_name: "Tv".into(),
        };
        let envelope = EventEnvelope::decode(OutgoingEvent::new(&placed, 1).payload.as_slice())
            .expect("envelope");
        let (customer, facts) = notice_of(&envelope).expect("decodes").expect("a notice");
        assert_eq!(customer, "kim");
        assert_eq!(
            (facts.event_type, facts.reservation_id),
            ("ReservationPlaced", 2)
        );
        assert_eq!(facts.product_name.as_deref(), Some("Tv"));

        let refunded = PaymentRefunded {
            payment_id: 4,
            reservation_id: 2,
            customer_id: "kim".into(),
        };
        let envelope = EventEnvelope::decode(OutgoingEvent::new(&refunded, 3).payload.as_slice())
            .expect("envelope");
        let (_, facts) = notice_of(&envelope).expect("decodes").expect("a notice");
        assert_eq!(
            (facts.event_type, facts.payment_id),
            ("PaymentRefunded", Some(4))
        );
    }
}
