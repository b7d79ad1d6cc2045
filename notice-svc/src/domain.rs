//! Notifications as pure values: what an event announces, where a notification's delivery
//! is, the delivery rules, and why an event cannot become one. No I/O, no diesel, no tonic.

use std::time::Duration;

use reserve_proto::events::v1::EventEnvelope;
use reserve_proto::events::{Event, Moved, StatusChange};

pub use mesh_core::ids::{Id, InvalidId};
pub use reserve_proto::payment::v1::PaymentStatus;
pub use reserve_proto::reservation::v1::ReservationStatus;

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
    /// Every state.
    pub const ALL: [Delivery; 3] = [Self::Pending, Self::Sent, Self::Failed];

    /// The name stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
        }
    }

    /// Parses a stored name.
    pub fn from_stored(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|delivery| delivery.as_str() == name)
    }
}

/// A recorded notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Its id (also the order notifications are listed in).
    pub id: Id,
    /// The event that caused it: one notification per event.
    pub event_id: String,
    /// The buyer.
    pub customer_id: String,
    /// The event's type, e.g. `ReservationPlaced`.
    pub event_type: String,
    /// The reservation concerned.
    pub reservation_id: Id,
    /// The rendered text.
    pub message: String,
    /// When it was recorded, Unix milliseconds.
    pub created_at_ms: i64,
    /// Where its delivery is.
    pub delivery: Delivery,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// What a notification announces: the status a buyer's reservation or payment moved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The reservation moved.
    Reservation(ReservationStatus),
    /// Its payment moved.
    Payment {
        /// The payment.
        payment_id: Id,
        /// Its new status.
        status: PaymentStatus,
    },
}

/// Everything a notification's text is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeFacts {
    /// The event's type, e.g. `ReservationPlaced`.
    pub event_type: &'static str,
    /// The buyer.
    pub customer_id: String,
    /// The reservation concerned.
    pub reservation_id: Id,
    /// The product, when the event names it.
    pub product_name: Option<String>,
    /// What moved, and where to.
    pub subject: Subject,
}

/// Why an event cannot become a notification: it is rejected, never recorded in part.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    /// Its payload is not the protobuf its type names.
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
    /// It names its reservation or payment by a zero or negative id.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
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

/// The facts of the notification an event calls for: one for every status change of the
/// shared table ([`StatusChange::of`]); `None` when the event moves no buyer's status.
pub fn notice_of(event: &EventEnvelope) -> Result<Option<NoticeFacts>, NoticeError> {
    let Some(decoded) = Event::decode(&event.event_type, &event.payload)? else {
        return Ok(None);
    };
    let event_type = decoded.event_type();
    let Some(change) = StatusChange::of(decoded) else {
        return Ok(None);
    };
    let (product_name, subject) = match change.moved {
        Moved::Reservation {
            product_name,
            status,
            ..
        } => (product_name, Subject::Reservation(status)),
        Moved::Payment {
            payment_id, status, ..
        } => {
            let payment_id = Id::parse(payment_id, "payment id")?;
            (None, Subject::Payment { payment_id, status })
        }
    };
    Ok(Some(NoticeFacts {
        event_type,
        customer_id: change.customer_id,
        reservation_id: Id::parse(change.reservation_id, "reservation id")?,
        product_name,
        subject,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::events::OutgoingEvent;
    use prost::Message;
    use reserve_proto::events::v1::{PaymentRefunded, ReservationPlaced};

    fn envelope(event: OutgoingEvent) -> EventEnvelope {
        EventEnvelope::decode(event.payload.as_slice()).expect("envelope")
    }

    fn id(raw: i64) -> Id {
        Id::parse(raw, "id").expect("positive")
    }

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
        let facts = notice_of(&envelope(OutgoingEvent::new(&placed, 1)))
            .expect("decodes")
            .expect("a notice");
        assert_eq!(
            facts,
            NoticeFacts {
                event_type: "ReservationPlaced",
                customer_id: "kim".into(),
                reservation_id: id(2),
                product_name: Some("Tv".into()),
                subject: Subject::Reservation(ReservationStatus::Reserved),
            }
        );

        let refunded = PaymentRefunded {
            payment_id: 4,
            reservation_id: 2,
            customer_id: "kim".into(),
        };
        let facts = notice_of(&envelope(OutgoingEvent::new(&refunded, 3)))
            .expect("decodes")
            .expect("a notice");
        assert_eq!(
            (facts.event_type, facts.subject),
            (
                "PaymentRefunded",
                Subject::Payment {
                    payment_id: id(4),
                    status: PaymentStatus::Refunded
                }
            )
        );
    }

    #[test]
    fn an_event_without_its_payment_id_is_refused() {
        let refunded = PaymentRefunded {
            payment_id: 0,
            reservation_id: 2,
            customer_id: "kim".into(),
        };
        let err = notice_of(&envelope(OutgoingEvent::new(&refunded, 3))).expect_err("id 0");
        assert_eq!(
            err.to_string(),
            "payment id must be a positive number, got 0"
        );
    }

    #[test]
    fn delivery_states_read_back() {
        for delivery in Delivery::ALL {
            assert_eq!(Delivery::from_stored(delivery.as_str()), Some(delivery));
        }
        assert_eq!(Delivery::from_stored("sent"), None);
    }
}
