//! A [`KeyedEffect`] handler against a real NATS JetStream and PostgreSQL: copies of one
//! event are all acked and take effect once, the consumer writes no inbox row for them, and
//! the effect runs outside any transaction (its one statement is its own).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::connection::TransactionManager;
use diesel::prelude::*;
use mesh_core::consumer::{Batched, ConsumerPolicy, EventHandler, HandleError, KeyedEffect};
use mesh_core::{DbConnection, DbError};
use reserve_proto::events::v1::EventEnvelope;

mod support;
use support::{all_acked, consumer_with, fixture, placed, publish_without_id, wait_for};

/// The consumers' inbox table as the consumer writes it, and the test's own effects, one row
/// per event id.
#[allow(missing_docs)]
mod tables {
    diesel::table! {
        processed_events (consumer, event_id) {
            consumer -> Text,
            event_id -> Text,
            processed_at_ms -> BigInt,
        }
    }

    diesel::table! {
        keyed_effects (event_id) {
            event_id -> Text,
        }
    }
}
use tables::{keyed_effects, processed_events};

/// Writes one `keyed_effects` row per event, keyed by its id; notes whether it ever ran
/// inside a transaction.
#[derive(Default)]
struct KeyedRecorder {
    ran_in_a_transaction: AtomicBool,
}

impl EventHandler for KeyedRecorder {
    fn apply(&self, _conn: &mut DbConnection, _event: &EventEnvelope) -> Result<(), HandleError> {
        Err(HandleError::Reject(
            "a keyed handler is applied through apply_new".into(),
        ))
    }

    fn keyed(&self) -> Option<&dyn KeyedEffect> {
        Some(self)
    }
}

impl KeyedEffect for KeyedRecorder {
    fn apply_new(
        &self,
        conn: &mut DbConnection,
        events: &[Batched<'_>],
    ) -> Result<HashSet<String>, HandleError> {
        let in_transaction =
            <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
                .transaction_depth()?
                .is_some();
        if in_transaction {
            self.ran_in_a_transaction.store(true, Ordering::SeqCst);
        }
        let DbConnection::Postgres(pg) = conn else {
            return Err(HandleError::Reject("the test runs on PostgreSQL".into()));
        };
        let rows: Vec<_> = events
            .iter()
            .map(|event| keyed_effects::event_id.eq(&event.envelope.event_id))
            .collect();
        let applied: Vec<String> = diesel::insert_into(keyed_effects::table)
            .values(rows)
            .on_conflict(keyed_effects::event_id)
            .do_nothing()
            .returning(keyed_effects::event_id)
            .get_results(pg)?;
        Ok(applied.into_iter().collect())
    }
}

#[tokio::test]
async fn copies_of_an_event_are_acked_and_take_effect_once_without_an_inbox() {
    let fx = fixture("consumer_keyed").await;
    fx.db
        .run(|conn| {
            conn.batch_execute("CREATE TABLE keyed_effects (event_id TEXT PRIMARY KEY)")
                .map_err(DbError::from)
        })
        .await
        .expect("the keyed effects table");
    let (first, second) = (placed(1), placed(2));
    // Three copies of the first event without a message id (JetStream keeps all three), then
    // another event: one batch or several, each copy must be acked, none applied twice.
    for event in [&first, &first, &first, &second] {
        publish_without_id(&fx.js, event).await;
    }
    let handler = Arc::new(KeyedRecorder::default());
    let consumer = consumer_with(&fx, "keyed", ConsumerPolicy::default(), handler.clone());
    tokio::spawn(consumer.run(fx.shutdown.clone()));
    wait_for("every copy to be acked", Duration::from_secs(10), || {
        all_acked(&fx.js, "keyed", 4)
    })
    .await;
    let count = |table: &'static str| {
        fx.db.run(move |conn| {
            match table {
                "inbox" => processed_events::table.count().get_result::<i64>(conn),
                _ => keyed_effects::table.count().get_result::<i64>(conn),
            }
            .map_err(DbError::from)
        })
    };
    assert_eq!(
        count("effects").await.expect("effects"),
        2,
        "each event once"
    );
    let inbox_rows = count("inbox").await.expect("inbox rows");
    assert_eq!(inbox_rows, 0, "a keyed handler's events need no inbox row");
    assert!(
        !handler.ran_in_a_transaction.load(Ordering::SeqCst),
        "the one statement is its own transaction"
    );
}
