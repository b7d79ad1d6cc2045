//! Reconcilers of several replicas over one reservations table: a stale intent is claimed by
//! exactly one of them, and stays theirs until the grace period has passed again; and a
//! confirmation racing a reconciler's claim queues no event for the intent it lost.

use mesh_core::Db;
use mesh_core::db::DbTarget;
use mesh_core::testing::fresh_postgres_database;
use reservation_svc::domain::{CustomerId, Id};
use reservation_svc::store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_intent_is_claimed_by_one_reconciler_only() {
    let target = DbTarget::Postgres(fresh_postgres_database("reconciler_claims"));
    let db = Db::connect(&target, store::MIGRATIONS, 8)
        .await
        .expect("database");
    let recorded_at = 1_000;
    let intent = db
        .run(move |conn| {
            let product = Id::parse(7, "product id").expect("positive");
            let customer = CustomerId::parse("kim").expect("a customer id");
            store::record_intent(conn, product, &customer, recorded_at)
        })
        .await
        .expect("an intent")
        .id;

    // Eight replicas' passes found it stale at the same moment; each tries to claim it.
    let cutoff = recorded_at + 5_000;
    let claims = (0..8).map(|replica| {
        let db = db.clone();
        tokio::spawn(async move {
            db.run(move |conn| store::claim_intent(conn, intent, cutoff, cutoff + replica))
                .await
        })
    });
    let mut won = 0;
    for claim in claims {
        if claim.await.expect("claim task").expect("claim") {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one reconciler claims the intent");

    // Its claim stamped the intent: not stale again for anyone until another grace period.
    let again = db
        .run(move |conn| store::claim_intent(conn, intent, cutoff, cutoff + 100))
        .await
        .expect("claim");
    assert!(
        !again,
        "a claimed intent is not claimed twice in one grace period"
    );
    let later = db
        .run(move |conn| store::claim_intent(conn, intent, cutoff + 10_000, cutoff + 10_000))
        .await
        .expect("claim");
    assert!(
        later,
        "a claim left unfinished is taken again after the grace period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirming_intents_queues_the_events_of_those_it_moved_only() {
    let target = DbTarget::Postgres(fresh_postgres_database("reserve_intents"));
    let db = Db::connect(&target, store::MIGRATIONS, 4)
        .await
        .expect("database");
    let (moved, pending) = db
        .run(|conn| -> Result<_, store::StoreError> {
            let customer = CustomerId::parse("kim").expect("a customer id");
            let intents: Vec<_> = (1..=3)
                .map(|product| {
                    let product = Id::parse(product, "product id").expect("positive");
                    store::record_intent(conn, product, &customer, 1_000)
                })
                .collect::<Result<_, _>>()?;
            // The reconciler took the second first: its confirmation moves nothing.
            assert!(store::claim_intent(conn, intents[1].id, 5_000, 5_000)?);
            let events: Vec<_> = intents
                .iter()
                .map(|intent| mesh_core::events::OutgoingEvent {
                    event_id: format!("event-of-{}", intent.id),
                    subject: "reservation.placed".into(),
                    payload: vec![u8::try_from(intent.id.get()).unwrap_or(0); 3],
                    traceparent: (intent.id == intents[0].id).then(|| "00-tp".to_owned()),
                })
                .collect();
            let confirmations: Vec<_> = intents
                .iter()
                .zip(&events)
                .map(|(intent, event)| (intent.id, "seller-9", event))
                .collect();
            let moved = store::reserve_intents(conn, &confirmations, 6_000)?;
            let pending = mesh_core::outbox::pending(conn, 10)?;
            let moved: std::collections::BTreeSet<i64> = moved.into_iter().collect();
            let expected: std::collections::BTreeSet<i64> =
                [intents[0].id.get(), intents[2].id.get()].into();
            assert_eq!(moved, expected);
            Ok((
                vec![intents[0].id, intents[2].id],
                pending
                    .into_iter()
                    .map(|row| (row.event_id, row.subject, row.payload, row.traceparent))
                    .collect::<Vec<_>>(),
            ))
        })
        .await
        .expect("confirmations");
    // One row per moved intent, in the order given, with every column of its event.
    let expected: Vec<_> = moved
        .iter()
        .enumerate()
        .map(|(n, id)| {
            (
                format!("event-of-{id}"),
                "reservation.placed".to_owned(),
                vec![u8::try_from(id.get()).unwrap_or(0); 3],
                (n == 0).then(|| "00-tp".to_owned()),
            )
        })
        .collect();
    assert_eq!(pending, expected);
    let visible = db
        .run(move |conn| store::find_any(conn, moved[0]))
        .await
        .expect("the reservation");
    assert_eq!(visible.seller_id, "seller-9");
}
