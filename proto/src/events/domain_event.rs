//! What every event message says about itself: its type name, the aggregate it belongs to, and
//! that aggregate's id; and [`Event`], every event decoded. The envelope, the JetStream
//! subject and the consumers' dispatch are all derived from this one table, so a new event
//! cannot be half-registered: a consumer that matches [`Event`] (as
//! [`super::StatusChange::of`] does) fails to compile until it handles the new one.

use super::v1::*;

/// A domain event payload (one of the messages of `reserve.events.v1`).
pub trait DomainEvent: prost::Message + Default {
    /// The event's type name, e.g. `ReservationPlaced`; also the last token of its subject.
    const EVENT_TYPE: &'static str;
    /// The aggregate it is about: `reservation` or `payment`.
    const AGGREGATE_TYPE: &'static str;

    /// The id of the aggregate instance it is about.
    fn aggregate_id(&self) -> i64;
}

macro_rules! domain_events {
    ($($message:ident => $aggregate:literal by $id:ident;)*) => {
        $(
            impl DomainEvent for $message {
                const EVENT_TYPE: &'static str = stringify!($message);
                const AGGREGATE_TYPE: &'static str = $aggregate;

                fn aggregate_id(&self) -> i64 {
                    self.$id
                }
            }
        )*

        /// Any event of `reserve.events.v1`, decoded.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Event {
            $(
                #[doc = concat!("A `", stringify!($message), "`.")]
                $message($message),
            )*
        }

        impl Event {
            /// Decodes `payload` as the event `event_type` names; `Ok(None)` for a type this
            /// build does not know (a newer publisher's).
            pub fn decode(event_type: &str, payload: &[u8]) -> Result<Option<Self>, prost::DecodeError> {
                match event_type {
                    $(
                        <$message as DomainEvent>::EVENT_TYPE => {
                            <$message as prost::Message>::decode(payload).map(|event| Some(Self::$message(event)))
                        }
                    )*
                    _ => Ok(None),
                }
            }

            /// Its type name, e.g. `ReservationPlaced`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$message(_) => <$message as DomainEvent>::EVENT_TYPE,)*
                }
            }
        }
    };
}

domain_events! {
    ReservationPlaced => "reservation" by reservation_id;
    ReservationCancelled => "reservation" by reservation_id;
    ReservationConfirmed => "reservation" by reservation_id;
    PaymentRequested => "payment" by payment_id;
    PaymentCompleted => "payment" by payment_id;
    PaymentVoided => "payment" by payment_id;
    PaymentRefunded => "payment" by payment_id;
}
