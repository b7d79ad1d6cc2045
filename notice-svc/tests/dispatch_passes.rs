//! The dispatcher's pass on PostgreSQL holds the row locks of the notifications it delivers:
//! one that another transaction holds (another replica's pass in flight) is passed over, not
//! waited for and not sent twice, and the next pass delivers it once it is free.

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use mesh_core::Db;
use mesh_core::db::DbTarget;
use mesh_core::testing::fresh_postgres_database;
use notice_svc::dispatcher::Dispatcher;
use notice_svc::domain::{Delivery, Id};
use notice_svc::sink::Sink;
use notice_svc::store::{self, MIGRATIONS, NewNotice};
use tokio::sync::Notify;

/// Every notification as (id, delivery, attempts), by id.
async fn states(db: &Db) -> Vec<(i64, Delivery, i32)> {
    let mut notices: Vec<_> = db
        .run(|conn| store::list(conn, "", None, 100))
        .await
        .expect("list")
        .into_iter()
        .map(|notice| (notice.id.get(), notice.delivery, notice.attempts))
        .collect();
    notices.sort_by_key(|(id, ..)| *id);
    notices
}

#[tokio::test]
async fn a_pass_passes_over_what_another_pass_holds_and_the_next_delivers_it() {
    let url = fresh_postgres_database("notice_dispatch_locks");
    let db = Db::connect(&DbTarget::Postgres(url.clone()), MIGRATIONS, 4)
        .await
        .expect("database");
    db.run(|conn| {
        let notices: Vec<NewNotice<'_>> = ["e-1", "e-2", "e-3"]
            .into_iter()
            .zip(1..)
            .map(|(event_id, reservation)| NewNotice {
                event_id,
                customer_id: "kim".into(),
                event_type: "ReservationPlaced",
                reservation_id: Id::parse(reservation, "reservation id").expect("an id"),
                message: format!("Reservation {reservation} placed"),
                traceparent: None,
            })
            .collect();
        store::record(conn, &notices)
    })
    .await
    .expect("recorded");
    let ids: Vec<i64> = states(&db).await.iter().map(|(id, ..)| *id).collect();
    assert_eq!(ids.len(), 3);

    // Another replica's pass holds the oldest.
    let mut other = PgConnection::establish(&url).expect("connect");
    other
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM notices WHERE id = {} FOR UPDATE",
            ids[0]
        ))
        .expect("hold a row");
    let dispatcher = Dispatcher::new(db.clone(), Sink::Log, Arc::new(Notify::new()), 5);
    let attempted = tokio::time::timeout(Duration::from_secs(5), dispatcher.pass())
        .await
        .expect("the pass does not wait for the held row")
        .expect("pass");
    assert_eq!(attempted, 2);
    assert_eq!(
        states(&db).await,
        vec![
            (ids[0], Delivery::Pending, 0),
            (ids[1], Delivery::Sent, 1),
            (ids[2], Delivery::Sent, 1),
        ]
    );

    other.batch_execute("COMMIT").expect("let the row go");
    assert_eq!(dispatcher.pass().await.expect("pass"), 1);
    assert_eq!(
        dispatcher.pass().await.expect("pass"),
        0,
        "nothing is sent twice"
    );
    assert!(
        states(&db)
            .await
            .iter()
            .all(|(_, delivery, attempts)| *delivery == Delivery::Sent && *attempts == 1)
    );
}
