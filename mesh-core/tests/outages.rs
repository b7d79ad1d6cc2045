//! Consumers and relays under the faults production brings, against a real NATS JetStream and
//! a real PostgreSQL: database outages longer than a handful of retries, events that can
//! never apply and their replay, server restarts, and the inbox's growth.
//!
//! Long (over 400 lines) because every fault is set up and healed in the test that names it,
//! against real servers; the fixtures are in `support`.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use diesel::prelude::*;
use mesh_core::consumer::ConsumerPolicy;
use mesh_core::db::DbTarget;
use mesh_core::dead_letters::{self, Selection};
use mesh_core::events;
use mesh_core::outbox::{OutboxRelay, OutboxSignal};
use mesh_core::redelivery::RedeliveryPolicy;
use mesh_core::{Db, DbError};

use support::*;

/// Quick retries, so a test sees many of them in a second.
fn quick_retries() -> ConsumerPolicy {
    ConsumerPolicy {
        redelivery: RedeliveryPolicy {
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            ..RedeliveryPolicy::default()
        },
        ..ConsumerPolicy::default()
    }
}

async fn publish(fx: &Fixture, reservation_id: i64) -> String {
    let event = placed(reservation_id);
    publish_without_id(&fx.js, &event).await;
    event.event_id
}

#[tokio::test]
async fn an_event_failing_for_a_passing_reason_is_retried_until_it_applies_not_dead_lettered() {
    let fx = fixture("outage_retry").await;
    publish(&fx, 1).await;
    // Twelve failures: more than the five tries after which the event used to be given up.
    let handler = Arc::new(FailingHandler::default());
    handler.passing_failures.store(12, Ordering::SeqCst);
    tokio::spawn(
        consumer_with(&fx, "patient", quick_retries(), handler.clone()).run(fx.shutdown.clone()),
    );
    wait_for("the event's effect", Duration::from_secs(20), || async {
        effects(&fx.db).await == 1
    })
    .await;
    assert_eq!(handler.calls.load(Ordering::SeqCst), 13);
    assert_eq!(
        dead_letter_count(&fx.js).await,
        0,
        "nothing was dead-lettered"
    );
}

#[tokio::test]
async fn an_event_still_failing_past_the_maximum_age_is_dead_lettered_with_the_reason() {
    let fx = fixture("outage_max_age").await;
    publish(&fx, 1).await;
    let handler = Arc::new(FailingHandler::default());
    handler.passing_failures.store(u32::MAX, Ordering::SeqCst);
    let mut policy = quick_retries();
    policy.redelivery.max_age = Duration::from_millis(300);
    tokio::spawn(consumer_with(&fx, "aged", policy, handler).run(fx.shutdown.clone()));
    wait_for("one dead letter", Duration::from_secs(20), || async {
        dead_letter_count(&fx.js).await == 1
    })
    .await;
    let letters = dead_letters::list(&fx.js, &Selection::default())
        .await
        .expect("list");
    assert!(
        letters[0].reason.contains("still failing")
            && letters[0].reason.contains("connection refused"),
        "{:?}",
        letters[0].reason
    );
    assert_eq!(effects(&fx.db).await, 0);
}

/// Publishes a reservation event that consumer `durable` rejects (for now), and waits until it
/// is dead-lettered; returns the event id and the handler (clear `rejecting` to mend it).
async fn dead_letter_one(
    fx: &Fixture,
    reservation_id: i64,
    durable: &str,
) -> (String, Arc<FailingHandler>) {
    let event_id = publish(fx, reservation_id).await;
    let handler = Arc::new(FailingHandler::default());
    handler.rejecting.store(true, Ordering::SeqCst);
    tokio::spawn(
        consumer_with(fx, durable, quick_retries(), handler.clone()).run(fx.shutdown.clone()),
    );
    wait_for("one dead letter", Duration::from_secs(10), || async {
        dead_letter_count(&fx.js).await == 1
    })
    .await;
    (event_id, handler)
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_to_their_consumer_once() {
    let fx = fixture("dlq_replay").await;
    let (event_id, handler) = dead_letter_one(&fx, 7, "picky").await;

    let listed = dead_letters::list(&fx.js, &Selection::default())
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    let letter = &listed[0];
    assert_eq!(letter.consumer, "picky");
    assert_eq!(letter.event_type, "ReservationPlaced");
    assert_eq!(letter.event_id, event_id);
    assert!(letter.reason.contains("refuses"), "{}", letter.reason);
    assert!(!letter.dead_lettered_at.is_empty());
    let other = Selection {
        consumer: Some("someone-else".into()),
        ..Selection::default()
    };
    assert!(
        dead_letters::list(&fx.js, &other)
            .await
            .expect("list")
            .is_empty()
    );

    // The cause is mended; replay by event id.
    handler.rejecting.store(false, Ordering::SeqCst);
    let by_id = Selection {
        event_id: Some(event_id.clone()),
        ..Selection::default()
    };
    let replayed = dead_letters::replay(&fx.js, &by_id).await.expect("replay");
    assert_eq!(replayed.len(), 1);
    wait_for(
        "the replayed event's effect",
        Duration::from_secs(10),
        || async { effects(&fx.db).await == 1 },
    )
    .await;
    assert_eq!(
        dead_letter_count(&fx.js).await,
        0,
        "replay removed the letter"
    );
    assert!(
        dead_letters::replay(&fx.js, &Selection::default())
            .await
            .expect("replay again")
            .is_empty()
    );

    // A replay of an event its consumer already applied changes nothing.
    let twice = fx.js.clone();
    let copy = placed(7);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(dead_letters::REPLAY_FOR_HEADER, "picky");
    let mut envelope: reserve_proto::events::v1::EventEnvelope =
        prost::Message::decode(copy.payload.as_slice()).expect("envelope");
    envelope.event_id = event_id;
    twice
        .publish_with_headers(
            copy.subject,
            headers,
            prost::Message::encode_to_vec(&envelope).into(),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    let calls = handler.calls.load(Ordering::SeqCst);
    wait_for(
        "the consumer to see the copy",
        Duration::from_secs(10),
        || async { consumer_acked_everything(&fx, "picky").await },
    )
    .await;
    assert_eq!(effects(&fx.db).await, 1);
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        calls,
        "the inbox dropped it"
    );
}

#[tokio::test]
async fn a_replay_meant_for_another_consumer_is_left_alone() {
    let fx = fixture("dlq_replay_target").await;
    let event = placed(3);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(dead_letters::REPLAY_FOR_HEADER, "someone-else");
    fx.js
        .publish_with_headers(event.subject, headers, event.payload.into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    tokio::spawn(consumer(&fx, "bystander", quick_retries()).run(fx.shutdown.clone()));
    wait_for(
        "the consumer to ack it",
        Duration::from_secs(10),
        || async { consumer_acked_everything(&fx, "bystander").await },
    )
    .await;
    assert_eq!(effects(&fx.db).await, 0);
}

async fn consumer_acked_everything(fx: &Fixture, durable: &str) -> bool {
    let Ok(stream) = fx.js.get_stream(events::EVENTS_STREAM).await else {
        return false;
    };
    let Ok(consumer) = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable)
        .await
    else {
        return false;
    };
    let Ok(info) = consumer.get_info().await else {
        return false;
    };
    let last = stream
        .get_info()
        .await
        .map_or(0, |info| info.state.last_sequence);
    info.num_pending == 0 && info.num_ack_pending == 0 && info.ack_floor.stream_sequence >= last
}

#[tokio::test]
async fn a_refused_database_connection_says_so() {
    let refused = Db::connect(
        &DbTarget::Postgres("postgres://postgres@127.0.0.1:1/nothing".into()),
        TEST_MIGRATIONS,
        1,
    )
    .await;
    let message = match refused {
        Ok(_) => panic!("connected to a closed port"),
        Err(err) => err.to_string(),
    };
    assert!(message.contains("refused"), "{message}");
    assert!(!message.contains("multiconnection"), "{message}");
}

#[tokio::test]
async fn inbox_rows_older_than_the_stream_keeps_events_are_purged() {
    let fx = fixture("inbox_purge").await;
    let old_ms = mesh_core::clock::now_ms() - 9 * 24 * 3600 * 1000;
    let recent_ms = mesh_core::clock::now_ms() - 24 * 3600 * 1000;
    fx.db
        .run(move |conn| {
            diesel::sql_query(format!(
                "INSERT INTO processed_events (consumer, event_id, processed_at_ms) VALUES \
                 ('tidy', 'old', {old_ms}), ('tidy', 'recent', {recent_ms}), ('other', 'old', {old_ms})"
            ))
            .execute(conn)
            .map_err(DbError::from)
        })
        .await
        .expect("seed inbox");
    let policy = ConsumerPolicy {
        stall_after: Duration::from_millis(300),
        ..quick_retries()
    };
    tokio::spawn(consumer(&fx, "tidy", policy).run(fx.shutdown.clone()));
    let inbox = || async {
        fx.db
            .run(|conn| {
                diesel::sql_query(
                    "SELECT consumer || ':' || event_id AS key FROM processed_events ORDER BY 1",
                )
                .load::<InboxKey>(conn)
                .map_err(DbError::from)
            })
            .await
            .expect("inbox")
            .into_iter()
            .map(|row| row.key)
            .collect::<Vec<_>>()
    };
    wait_for("the old row to go", Duration::from_secs(10), || async {
        inbox().await == ["other:old", "tidy:recent"]
    })
    .await;
}

#[derive(QueryableByName)]
struct InboxKey {
    #[diesel(sql_type = diesel::sql_types::Text)]
    key: String,
}

/// Starts an outbox relay and a consumer `durable` with a quick stall watchdog on `fx`;
/// returns the signal that wakes the relay.
fn relay_and_consumer(fx: &Fixture, durable: &str) -> OutboxSignal {
    let signal = OutboxSignal::default();
    tokio::spawn(
        OutboxRelay::new(fx.db.clone(), fx.js.clone(), signal.clone()).run(fx.shutdown.clone()),
    );
    let policy = ConsumerPolicy {
        stall_after: Duration::from_secs(2),
        ..quick_retries()
    };
    tokio::spawn(consumer(fx, durable, policy).run(fx.shutdown.clone()));
    signal
}

#[tokio::test]
async fn relay_and_consumer_resume_after_nats_is_killed_under_load() {
    let mut fx = fixture("nats_kill").await;
    let signal = relay_and_consumer(&fx, "survivor");

    let mut next = 1;
    for _round in 0..3 {
        // Load while the server dies and comes back.
        for _ in 0..10 {
            enqueue(&fx.db, (next..next + 50).map(placed).collect()).await;
            next += 50;
            signal.wake();
        }
        fx.nats.stop();
        enqueue(&fx.db, (next..next + 50).map(placed).collect()).await;
        next += 50;
        fx.nats.restart();
    }
    let total = next - 1;
    wait_for(
        "every event to take effect once",
        Duration::from_secs(60),
        || async { effects(&fx.db).await == total },
    )
    .await;
    assert_eq!(backlog(&fx.db).await, 0);
}

#[tokio::test]
async fn relay_and_consumer_resume_after_nats_comes_back_without_its_streams() {
    let mut fx = fixture("nats_empty").await;
    let signal = relay_and_consumer(&fx, "rebuilt");
    enqueue(&fx.db, (1..=5).map(placed).collect()).await;
    signal.wake();
    wait_for("the first events out", Duration::from_secs(10), || async {
        backlog(&fx.db).await == 0
    })
    .await;
    // The server is replaced without its volume: the streams are gone.
    fx.nats.restart_empty();
    enqueue(&fx.db, (6..=10).map(placed).collect()).await;
    signal.wake();
    wait_for(
        "the relay to publish again",
        Duration::from_secs(30),
        || async { backlog(&fx.db).await == 0 },
    )
    .await;
    assert_eq!(stream_messages(&fx.js, events::EVENTS_STREAM).await, 5);
    // The consumer's durable went with the store: it is made anew and takes the new events.
    wait_for("every event's effect", Duration::from_secs(30), || async {
        effects(&fx.db).await == 10
    })
    .await;
}

#[derive(QueryableByName)]
struct Synchronous {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    synchronous: i32,
}

#[tokio::test]
async fn sqlite_commits_survive_a_power_loss() {
    // synchronous = NORMAL in WAL mode may lose the last commits on power loss, after their
    // events were published: FULL (2) syncs the WAL at every commit.
    let dir = std::env::temp_dir().join(format!("rm-sqlite-sync-{}", std::process::id()));
    let db = Db::connect(
        &DbTarget::SqliteFile(dir.join("sync.sqlite3")),
        TEST_MIGRATIONS,
        1,
    )
    .await
    .expect("sqlite");
    let mode = db
        .run(|conn| {
            diesel::sql_query("PRAGMA synchronous")
                .get_result::<Synchronous>(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("pragma");
    assert_eq!(mode.synchronous, 2, "synchronous = FULL");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_dead_letters_command_lists_and_replays() {
    let fx = fixture("dlq_command").await;
    let (event_id, handler) = dead_letter_one(&fx, 5, "cli").await;
    let command = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dead-letters"))
            .args(args)
            .env("NATS_URL", &fx.nats.url)
            .output()
            .expect("run dead-letters");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, listed, _) = command(&["list"]);
    assert!(ok);
    let fields: Vec<&str> = listed.trim().split('\t').collect();
    assert_eq!(
        fields[1..4],
        ["cli", "ReservationPlaced", event_id.as_str()],
        "{listed}"
    );
    assert!(fields[5].contains("refuses"), "{listed}");

    let (ok, _, usage) = command(&["replay"]);
    assert!(!ok, "a bare replay is refused");
    assert!(usage.contains("--all"), "{usage}");

    handler.rejecting.store(false, Ordering::SeqCst);
    let (ok, replayed, _) = command(&["replay", "--consumer", "cli"]);
    assert!(ok);
    assert!(replayed.starts_with("replayed\t"), "{replayed}");
    wait_for("the replayed effect", Duration::from_secs(10), || async {
        effects(&fx.db).await == 1
    })
    .await;
    let (_, listed, _) = command(&["list"]);
    assert!(listed.trim().is_empty(), "{listed}");
}
