//! Which events become notifications, and the delivery rules, as pure functions.

use std::time::Duration;

use reserve_proto::events::v1::EventEnvelope;
use reserve_proto::events::{Event, Moved, StatusChange};

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

/// The buyer and facts of the notification an event calls for: one for every status change
/// of the shared table ([`StatusChange::of`]); `None` when the event moves no buyer's status.
pub fn notice_of(
    event: &EventEnvelope,
) -> Result<Option<(String, NoticeFacts)>, prost::DecodeError> {
    let Some(decoded) = Event::decode(&event.event_type, &event.payload)? else {
        return Ok(None);
    };
    let event_type = decoded.event_type();
    Ok(StatusChange::of(decoded).map(|change| {
        let (product_name, payment_id) = match change.moved {
            Moved::Reservation { product_name, .. } => (product_name, None),
            Moved::Payment { payment_id, .. } => (None, Some(payment_id)),
        };
        let facts = NoticeFacts {
            event_type,
            reservation_id: change.reservation_id,
            product_name,
            payment_id,
        };
        (change.customer_id, facts)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::events::OutgoingEvent;
    use prost::Message;
    use reserve_proto::events::v1::{PaymentRefunded, ReservationPlaced};

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
