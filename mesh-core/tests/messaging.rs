//! The outbox relay and the consumer loop against a real NATS JetStream (a private server per
//! test) and a real PostgreSQL database (fresh per test).

mod support;

use std::time::Duration;

use diesel::prelude::*;
use mesh_core::DbError;
use mesh_core::consumer::ConsumerPolicy;
use mesh_core::events;
use mesh_core::outbox::{OutboxRelay, OutboxSignal};
use tokio_stream::StreamExt;

use support::*;

#[tokio::test]
async fn outbox_rows_wait_while_nats_is_down_and_are_published_once_after() {
    let mut fx = fixture("outbox_outage").await;
    // One relay at a time: a second one would find the rows claimed by the first (each takes
    // its own batch) and have nothing to try.
    let relay = OutboxRelay::new(fx.db.clone(), fx.js.clone(), OutboxSignal::default());
    enqueue(&fx.db, (1..=5).map(placed).collect()).await;
    relay
        .publish_batch()
        .await
        .expect("published while NATS is up");
    wait_for(
        "5 events in the stream",
        Duration::from_secs(10),
        || async { stream_messages(&fx.js, events::EVENTS_STREAM).await == 5 },
    )
    .await;

    fx.nats.stop();
    enqueue(&fx.db, (6..=10).map(placed).collect()).await;
    // A publish attempt during the outage (bounded by the NATS timeout) fails and leaves
    // every row for later.
    assert!(
        relay.publish_batch().await.is_err(),
        "publishing fails while NATS is down"
    );
    assert_eq!(backlog(&fx.db).await, 5, "rows wait while NATS is down");

    // The relay as a service runs it, from the outage on: it publishes once NATS is back.
    let signal = OutboxSignal::default();
    let running = OutboxRelay::new(fx.db.clone(), fx.js.clone(), signal.clone());
    tokio::spawn(running.run(fx.shutdown.clone()));
    signal.wake();
    fx.nats.restart();
    wait_for("the backlog to drain", Duration::from_secs(30), || async {
        backlog(&fx.db).await == 0
    })
    .await;
    // Every row is published and marked: the stream holds all it will. Publishes attempted
    // during the outage and retried after it were deduplicated.
    assert_eq!(stream_messages(&fx.js, events::EVENTS_STREAM).await, 10);
}

#[tokio::test]
async fn a_relay_crash_between_publish_and_mark_publishes_no_duplicate() {
    let fx = fixture("outbox_crash").await;
    let relay = OutboxRelay::new(fx.db.clone(), fx.js.clone(), OutboxSignal::default());
    enqueue(&fx.db, vec![placed(1)]).await;
    assert_eq!(relay.publish_batch().await.expect("publish"), 1);

    // The crash: the publish was acked, but the row was never stamped; some time later its
    // relay's claim has run out.
    fx.db
        .run(|conn| {
            diesel::sql_query("UPDATE outbox SET published_at_ms = NULL, claimed_until_ms = 1")
                .execute(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("unstamp");
    assert_eq!(relay.publish_batch().await.expect("publish again"), 1);
    assert_eq!(stream_messages(&fx.js, events::EVENTS_STREAM).await, 1);
}

/// Relays of several replicas over one outbox: every row published, none by two relays, and
/// a claim that a crashed relay left behind is taken over once it runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_of_several_replicas_share_one_outbox_without_publishing_a_row_twice() {
    const ROWS: i64 = 600;
    let fx = fixture("outbox_replicas").await;
    enqueue(&fx.db, (1..=ROWS).map(placed).collect()).await;
    let relays = (0..3).map(|_| {
        let relay = OutboxRelay::new(fx.db.clone(), fx.js.clone(), OutboxSignal::default());
        tokio::spawn(async move {
            let mut published = 0;
            loop {
                match relay.publish_batch().await.expect("a pass") {
                    0 => return published,
                    rows => published += rows,
                }
            }
        })
    });
    let mut shares = Vec::new();
    for relay in relays {
        shares.push(relay.await.expect("relay task"));
    }
    assert_eq!(
        shares.iter().sum::<usize>(),
        ROWS as usize,
        "each row published by exactly one relay: {shares:?}"
    );
    assert_eq!(backlog(&fx.db).await, 0);
    assert_eq!(
        stream_messages(&fx.js, events::EVENTS_STREAM).await,
        ROWS as u64
    );

    // A relay claimed a row and died: nobody takes it while the claim holds, anyone after.
    enqueue(&fx.db, vec![placed(ROWS + 1)]).await;
    let claim_held = |until: i64| {
        fx.db.run(move |conn| {
            diesel::sql_query(format!(
                "UPDATE outbox SET claimed_until_ms = {until} WHERE published_at_ms IS NULL"
            ))
            .execute(conn)
            .map_err(DbError::from)
        })
    };
    claim_held(mesh_core::clock::now_ms() + 60_000)
        .await
        .expect("claim");
    let survivor = OutboxRelay::new(fx.db.clone(), fx.js.clone(), OutboxSignal::default());
    assert_eq!(
        survivor.publish_batch().await.expect("a pass"),
        0,
        "a live claim is respected"
    );
    claim_held(mesh_core::clock::now_ms() - 1)
        .await
        .expect("claim runs out");
    assert_eq!(
        survivor.publish_batch().await.expect("a pass"),
        1,
        "an expired claim is taken over"
    );
}

#[tokio::test]
async fn an_event_redelivered_after_a_crash_before_ack_takes_effect_once() {
    let fx = fixture("consumer_crash").await;
    let relay = OutboxRelay::new(fx.db.clone(), fx.js.clone(), OutboxSignal::default());
    enqueue(&fx.db, vec![placed(1)]).await;
    relay.publish_batch().await.expect("publish");

    let policy = ConsumerPolicy {
        ack_wait: Duration::from_secs(1),
        ..ConsumerPolicy::default()
    };
    let first = consumer(&fx, "crashy", policy.clone());
    {
        let durable = first.durable().await.expect("consumer");
        let mut messages = durable.messages().await.expect("messages");
        let message = messages.next().await.expect("one").expect("message");
        // Effect committed; the process "dies" before acking.
        assert_eq!(
            first.process(&message).await,
            mesh_core::consumer::Outcome::Applied
        );
    }
    assert_eq!(effects(&fx.db).await, 1);

    // A restarted consumer gets the message again after ack_wait and only acks it.
    tokio::spawn(consumer(&fx, "crashy", policy).run(fx.shutdown.clone()));
    let js = fx.js.clone();
    wait_for(
        "the redelivery to be acked",
        Duration::from_secs(15),
        || {
            let js = js.clone();
            async move {
                let Ok(stream) = js.get_stream(events::EVENTS_STREAM).await else {
                    return false;
                };
                let Ok(mut durable) = stream
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>("crashy")
                    .await
                else {
                    return false;
                };
                // Delivered twice (the crash, then the redelivery), and now acked.
                durable.info().await.is_ok_and(|info| {
                    info.delivered.consumer_sequence >= 2
                        && info.ack_floor.stream_sequence >= 1
                        && info.num_ack_pending == 0
                })
            }
        },
    )
    .await;
    // Acked only after its inbox row committed: the count is final.
    assert_eq!(
        effects(&fx.db).await,
        1,
        "the redelivered event had no second effect"
    );
}

#[tokio::test]
async fn the_same_event_published_twice_takes_effect_once() {
    let fx = fixture("consumer_duplicate").await;
    let event = placed(1);
    // Two publishes without a message id: JetStream keeps both, the inbox drops one.
    for _ in 0..2 {
        publish_without_id(&fx.js, &event).await;
    }
    assert_eq!(stream_messages(&fx.js, events::EVENTS_STREAM).await, 2);
    tokio::spawn(consumer(&fx, "dedup", ConsumerPolicy::default()).run(fx.shutdown.clone()));
    wait_for("both copies to be acked", Duration::from_secs(10), || {
        all_acked(&fx.js, "dedup", 2)
    })
    .await;
    // Each copy is acked only after its inbox decision committed: the count is final.
    assert_eq!(effects(&fx.db).await, 1);
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_does_not_block_the_stream() {
    let fx = fixture("consumer_poison").await;
    let subject = format!("{}.reservation.ReservationPlaced", events::EVENTS_PREFIX);
    fx.js
        .publish(subject, bytes::Bytes::from_static(b"\xff\xfe not protobuf"))
        .await
        .expect("publish poison")
        .await
        .expect("ack");
    let good = placed(2);
    fx.js
        .publish(good.subject.clone(), good.payload.clone().into())
        .await
        .expect("publish good")
        .await
        .expect("ack");

    tokio::spawn(consumer(&fx, "poisoned", ConsumerPolicy::default()).run(fx.shutdown.clone()));
    wait_for(
        "the good event's effect",
        Duration::from_secs(10),
        || async { effects(&fx.db).await == 1 },
    )
    .await;
    wait_for("one dead letter", Duration::from_secs(10), || async {
        stream_messages(&fx.js, events::DLQ_STREAM).await == 1
    })
    .await;
    let dlq = fx
        .js
        .get_stream(events::DLQ_STREAM)
        .await
        .expect("dlq stream");
    let letter = dlq
        .get_last_raw_message_by_subject(&format!("{}.poisoned", events::DLQ_PREFIX))
        .await
        .expect("dead letter");
    let headers = letter.headers;
    assert!(
        headers
            .get("Reserve-Dead-Letter-Reason")
            .is_some_and(|reason| reason.as_str().contains("does not decode")),
        "{headers:?}"
    );
}
