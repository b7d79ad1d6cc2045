//! What the messaging integration tests share: a private NATS JetStream and a fresh
//! PostgreSQL database per test, a handler that records one row per applied event, and
//! waits with deadlines.
#![allow(dead_code)] // each test binary uses a part of it

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use diesel::prelude::*;
use mesh_core::consumer::{ConsumerPolicy, EventConsumer, EventHandler, HandleError, Subscription};
use mesh_core::db::DbTarget;
use mesh_core::events::{self, OutgoingEvent};
use mesh_core::outbox::{self, OutboxSignal};
use mesh_core::testing::{TestNats, fresh_postgres_database};
use mesh_core::{Db, DbConnection, DbError, Migrations, Shutdown};
use reserve_proto::events::v1::{EventEnvelope, ReservationPlaced};

pub(crate) const TEST_MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("tests/migrations/postgres"),
    sqlite: diesel_migrations::embed_migrations!("tests/migrations/sqlite"),
};

diesel::table! {
    test_effects (event_id) {
        event_id -> Text,
        note -> Text,
    }
}

/// Records one row per application; a doubled effect shows as two rows.
pub(crate) struct RecordingHandler;

impl EventHandler for RecordingHandler {
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError> {
        diesel::insert_into(test_effects::table)
            .values((
                test_effects::event_id.eq(&event.event_id),
                test_effects::note.eq(&event.event_type),
            ))
            .execute(conn)?;
        Ok(())
    }
}

pub(crate) struct Fixture {
    pub nats: TestNats,
    pub db: Db,
    pub js: jetstream::Context,
    pub shutdown: Shutdown,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub(crate) async fn fixture(label: &str) -> Fixture {
    let nats = TestNats::start();
    let db = Db::connect(
        &DbTarget::Postgres(fresh_postgres_database(label)),
        TEST_MIGRATIONS,
        4,
    )
    .await
    .expect("database");
    let js = events::connect(&nats.url, label).await.expect("nats");
    events::provision_patiently(&js, events::PROVISION_PATIENCE)
        .await
        .expect("provision");
    Fixture {
        nats,
        db,
        js,
        shutdown: Shutdown::new(),
    }
}

pub(crate) fn placed(reservation_id: i64) -> OutgoingEvent {
    OutgoingEvent::new(
        &ReservationPlaced {
            reservation_id,
            product_id: 1,
            customer_id: "kim".into(),
            product_name: "Phone".into(),
            seller_id: "lee".into(),
        },
        1,
    )
}

pub(crate) async fn enqueue(db: &Db, events: Vec<OutgoingEvent>) {
    db.transaction(move |conn| -> Result<(), DbError> {
        for event in &events {
            outbox::enqueue(conn, event)?;
        }
        Ok(())
    })
    .await
    .expect("enqueue");
}

/// Publishes `event` without a message id, so JetStream keeps every copy (none is taken for a
/// duplicate), and waits for the ack.
pub(crate) async fn publish_without_id(js: &jetstream::Context, event: &OutgoingEvent) {
    js.publish(event.subject.clone(), event.payload.clone().into())
        .await
        .expect("publish")
        .await
        .expect("ack");
}

pub(crate) async fn stream_messages(js: &jetstream::Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(mut stream) => stream.info().await.map_or(0, |info| info.state.messages),
        Err(_) => 0,
    }
}

pub(crate) async fn effects(db: &Db) -> i64 {
    db.run(|conn| {
        test_effects::table
            .count()
            .get_result::<i64>(conn)
            .map_err(DbError::from)
    })
    .await
    .expect("count effects")
}

pub(crate) async fn backlog(db: &Db) -> i64 {
    db.run(|conn| outbox::backlog(conn).map_err(DbError::from))
        .await
        .expect("backlog")
}

/// Polls `check` every 50 ms until it holds; fails the test after `limit`.
pub(crate) async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        poll.tick().await;
    }
}

/// Whether the durable consumer `durable` has acknowledged every message up to stream
/// sequence `upto`, with nothing pending or awaiting an ack.
pub(crate) async fn all_acked(js: &jetstream::Context, durable: &str, upto: u64) -> bool {
    let Ok(stream) = js.get_stream(events::EVENTS_STREAM).await else {
        return false;
    };
    let Ok(mut consumer) = stream
        .get_consumer::<jetstream::consumer::pull::Config>(durable)
        .await
    else {
        return false;
    };
    consumer.info().await.is_ok_and(|info| {
        info.ack_floor.stream_sequence >= upto && info.num_ack_pending == 0 && info.num_pending == 0
    })
}

pub(crate) fn consumer(fx: &Fixture, durable: &str, policy: ConsumerPolicy) -> EventConsumer {
    consumer_with(fx, durable, policy, Arc::new(RecordingHandler))
}

/// A consumer of the reservation events on `fx` applying them with `handler`.
pub(crate) fn consumer_with(
    fx: &Fixture,
    durable: &str,
    policy: ConsumerPolicy,
    handler: Arc<dyn EventHandler>,
) -> EventConsumer {
    EventConsumer::new(
        fx.db.clone(),
        fx.js.clone(),
        Subscription {
            durable: durable.into(),
            filter_subject: format!("{}.reservation.>", events::EVENTS_PREFIX),
        },
        handler,
        OutboxSignal::default(),
        policy,
    )
}

/// Records like [`RecordingHandler`], but first fails as told: `passing_failures` times with
/// a passing error (a database outage), and with a rejection while `rejecting` is set.
#[derive(Default)]
pub(crate) struct FailingHandler {
    pub passing_failures: AtomicU32,
    pub rejecting: AtomicBool,
    pub calls: AtomicU32,
}

impl EventHandler for FailingHandler {
    fn apply(&self, conn: &mut DbConnection, event: &EventEnvelope) -> Result<(), HandleError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.rejecting.load(Ordering::SeqCst) {
            return Err(HandleError::Reject("the handler refuses it for now".into()));
        }
        let left = self.passing_failures.load(Ordering::SeqCst);
        if left > 0 {
            self.passing_failures.store(left - 1, Ordering::SeqCst);
            return Err(HandleError::Retry(
                "database unavailable: connection refused".into(),
            ));
        }
        RecordingHandler.apply(conn, event)
    }
}

/// Dead letters in the dead-letter stream.
pub(crate) async fn dead_letter_count(js: &jetstream::Context) -> usize {
    mesh_core::dead_letters::list(js, &Default::default())
        .await
        .map_or(0, |letters| letters.len())
}

/// The id of the transaction the connection is in (PostgreSQL), to tell which writes shared a
/// commit.
pub(crate) fn transaction_id(conn: &mut DbConnection) -> Result<String, DbError> {
    #[derive(QueryableByName)]
    struct Txid {
        #[diesel(sql_type = diesel::sql_types::Text)]
        txid: String,
    }
    let DbConnection::Postgres(pg) = conn else {
        return Err(DbError::Unavailable("a PostgreSQL target".into()));
    };
    Ok(diesel::sql_query("SELECT txid_current()::text AS txid")
        .get_result::<Txid>(pg)?
        .txid)
}
