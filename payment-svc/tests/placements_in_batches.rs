//! A consumer batch's placements written together (one insert for the payments, one for their
//! announcements) end where the same events applied one at a time do: one payment per
//! reservation, a cancellation in the middle of the batch still ordered after its placement
//! and before a late one, and one announcement per payment written. The same batch through
//! the consumer's inbox-free path names exactly the events that changed something, and
//! delivered again changes nothing.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use mesh_core::events::OutgoingEvent;
use mesh_core::testing::{
    apply_as_one_batch, apply_keyed_batch, apply_one_at_a_time, fresh_postgres_db,
    reservation_placed,
};
use mesh_core::{Db, outbox};
use payment_svc::domain::Id;
use payment_svc::events::ReservationEvents;
use payment_svc::store::{self, MIGRATIONS};
use prost::Message;
use reserve_proto::events::v1::{EventEnvelope, ReservationCancelled};

fn cancelled(reservation_id: i64) -> OutgoingEvent {
    let event = ReservationCancelled {
        reservation_id,
        product_id: 3,
        customer_id: "kim".into(),
    };
    OutgoingEvent::new(&event, 2)
}

/// Placements of 1-6, a second placement of 1 (a new event id), a cancellation of 7 that
/// overtook its placement, the late placement of 7, and a cancellation of 2 after its
/// placement.
fn events() -> Vec<EventEnvelope> {
    let mut outgoing: Vec<OutgoingEvent> = (1..=6)
        .map(|reservation| reservation_placed(reservation, "kim"))
        .collect();
    outgoing.push(reservation_placed(1, "kim"));
    outgoing.push(cancelled(7));
    outgoing.push(reservation_placed(7, "kim"));
    outgoing.push(cancelled(2));
    outgoing
        .iter()
        .map(|event| EventEnvelope::decode(event.payload.as_slice()).expect("an envelope"))
        .collect()
}

/// Each reservation's payment (status and version) and the subjects announced, in order.
async fn outcome(db: &Db) -> (BTreeMap<i64, (String, i64)>, Vec<String>) {
    db.run(|conn| {
        let mut payments = BTreeMap::new();
        for reservation in 1..=7 {
            let id = Id::parse(reservation, "reservation id").expect("positive");
            if let Some(payment) = store::find_by_reservation(conn, id).expect("read") {
                payments.insert(
                    reservation,
                    (payment.status.as_str().to_owned(), payment.version),
                );
            }
        }
        let mut subjects: Vec<String> = outbox::pending(conn, 100)
            .expect("outbox")
            .into_iter()
            .map(|row| row.subject)
            .collect();
        subjects.sort();
        Ok::<_, mesh_core::DbError>((payments, subjects))
    })
    .await
    .expect("read back")
}

/// A fresh database with `events` applied one at a time: what a batch must end like.
async fn applied_one_at_a_time(label: &str, events: &[EventEnvelope]) -> Db {
    let db = fresh_postgres_db(label, MIGRATIONS).await;
    apply_one_at_a_time(&db, Arc::new(ReservationEvents), events).await;
    db
}

#[tokio::test]
async fn placements_written_together_end_where_one_at_a_time_does() {
    let events = events();

    let singly = applied_one_at_a_time("payment_batches_singly", &events).await;
    let together = fresh_postgres_db("payment_batches_together", MIGRATIONS).await;
    apply_as_one_batch(&together, Arc::new(ReservationEvents), &events).await;

    let (payments, subjects) = outcome(&together).await;
    assert_eq!((payments.clone(), subjects.clone()), outcome(&singly).await);
    assert_eq!(
        payments.len(),
        7,
        "one payment per reservation: {payments:?}"
    );
    assert_eq!(payments[&1], ("UNPAID".to_owned(), 1));
    assert_eq!(payments[&2], ("VOIDED".to_owned(), 2));
    assert_eq!(payments[&7], ("VOIDED".to_owned(), 1));
    // Six requested, one voided after its request, one voided without: eight announcements.
    assert_eq!(subjects.len(), 8, "{subjects:?}");
}

#[tokio::test]
async fn without_an_inbox_a_batch_names_what_it_changed_and_a_repeat_changes_nothing() {
    let events = events();
    let singly = applied_one_at_a_time("payment_keyed_singly", &events).await;
    let keyed = fresh_postgres_db("payment_keyed", MIGRATIONS).await;

    let applied = apply_keyed_batch(&keyed, Arc::new(ReservationEvents), &events).await;
    let expected: HashSet<String> = [0, 1, 2, 3, 4, 5, 7, 9]
        .into_iter()
        .map(|at| events[at].event_id.clone())
        .collect();
    // Not the second placement of 1 (index 6) nor the late placement of 7 (index 8).
    assert_eq!(applied, expected);
    let outcome_once = outcome(&keyed).await;
    assert_eq!(outcome_once, outcome(&singly).await);

    let again = apply_keyed_batch(&keyed, Arc::new(ReservationEvents), &events).await;
    assert!(again.is_empty(), "a redelivered batch applied {again:?}");
    assert_eq!(outcome(&keyed).await, outcome_once);
}
