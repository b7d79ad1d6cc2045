//! The event envelope decoder at the edge of every consumer: any bytes decode or fail, never
//! panic; an envelope with any payload opens or fails, never panics; what the outbox writes
//! opens back to the same event.

use mesh_core::events::{OutgoingEvent, open};
use proptest::prelude::*;
use prost::Message;
use reserve_proto::events::v1::{EventEnvelope, ReservationPlaced};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(envelope) = EventEnvelope::decode(bytes.as_slice()) {
            let _ = open::<ReservationPlaced>(&envelope);
        }
    }

    #[test]
    fn any_payload_opens_or_fails_without_panicking(payload in proptest::collection::vec(any::<u8>(), 0..256), event_type in "\\PC{0,30}") {
        let envelope = EventEnvelope { event_type, payload, ..Default::default() };
        let _ = open::<ReservationPlaced>(&envelope);
    }

    #[test]
    fn what_the_outbox_writes_opens_back(reservation_id in 1i64.., product_id in 1i64.., customer_id in "\\PC{0,40}", product_name in "\\PC{0,40}", seller_id in "\\PC{0,20}", version in 1i64..1000) {
        let event = ReservationPlaced { reservation_id, product_id, customer_id, product_name, seller_id };
        let outgoing = OutgoingEvent::new(&event, version);
        let envelope = EventEnvelope::decode(outgoing.payload.as_slice()).expect("an envelope");
        prop_assert_eq!(envelope.aggregate_version, version);
        let opened = open::<ReservationPlaced>(&envelope).expect("its type").expect("decodes");
        prop_assert_eq!(opened, event);
    }
}
