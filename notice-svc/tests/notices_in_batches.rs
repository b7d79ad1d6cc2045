//! A consumer batch's notifications written in one insert (on PostgreSQL) are the ones the
//! same events give applied one at a time: one per status change, each with its own buyer,
//! type, reservation and text, and nothing for an event that announces no change.

use std::sync::Arc;

use mesh_core::Db;
use mesh_core::events::OutgoingEvent;
use mesh_core::testing::{
    apply_as_one_batch, apply_one_at_a_time, fresh_postgres_db, reservation_placed,
};
use notice_svc::events::NoticeRecorder;
use notice_svc::store::{self, MIGRATIONS};
use notice_svc::templates::Lang;
use prost::Message;
use reserve_proto::events::v1::{EventEnvelope, ReservationCancelled};
use tokio::sync::Notify;

fn events() -> Vec<EventEnvelope> {
    let cancelled = ReservationCancelled {
        reservation_id: 1,
        product_id: 3,
        customer_id: "kim".into(),
    };
    let mut events: Vec<EventEnvelope> = [
        reservation_placed(1, "kim"),
        reservation_placed(2, "lee"),
        OutgoingEvent::new(&cancelled, 2),
    ]
    .iter()
    .map(|event| EventEnvelope::decode(event.payload.as_slice()).expect("an envelope"))
    .collect();
    // A type this service does not know (a newer producer's): no notification.
    let mut unknown = events[1].clone();
    unknown.event_id = "00000000-0000-4000-8000-000000000001".into();
    unknown.event_type = "ReservationAudited".into();
    events.insert(2, unknown);
    events
}

/// Every notification as (event id, buyer, type, reservation, text, delivery), by event id.
async fn recorded(db: &Db) -> Vec<(String, String, String, i64, String, String)> {
    let mut notices: Vec<_> = db
        .run(|conn| store::list(conn, "", None, 100))
        .await
        .expect("list")
        .into_iter()
        .map(|notice| {
            (
                notice.event_id,
                notice.customer_id,
                notice.event_type,
                notice.reservation_id.get(),
                notice.message,
                notice.delivery.as_str().to_owned(),
            )
        })
        .collect();
    notices.sort();
    notices
}

#[tokio::test]
async fn notifications_written_together_are_those_written_one_at_a_time() {
    let events = events();
    let recorder = Arc::new(NoticeRecorder::new(Lang::En, Arc::new(Notify::new())));

    let singly = fresh_postgres_db("notice_batches_singly", MIGRATIONS).await;
    apply_one_at_a_time(&singly, recorder.clone(), &events).await;
    let together = fresh_postgres_db("notice_batches_together", MIGRATIONS).await;
    apply_as_one_batch(&together, recorder, &events).await;

    let notices = recorded(&together).await;
    assert_eq!(notices, recorded(&singly).await);
    // Two placements and a cancellation; the unknown type is no status change.
    assert_eq!(notices.len(), 3, "{notices:?}");
    let reservations: Vec<(i64, &str)> = notices
        .iter()
        .map(|(_, buyer, _, reservation, ..)| (*reservation, buyer.as_str()))
        .collect();
    assert!(reservations.contains(&(2, "lee")), "{notices:?}");
    assert_eq!(
        reservations.iter().filter(|(id, _)| *id == 1).count(),
        2,
        "{notices:?}"
    );
    assert!(notices.iter().all(|notice| notice.5 == "PENDING"));
}
