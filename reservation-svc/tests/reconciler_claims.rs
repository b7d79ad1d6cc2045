//! Reconcilers of several replicas over one reservations table: a stale intent is claimed by
//! exactly one of them, and stays theirs until the grace period has passed again.

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
