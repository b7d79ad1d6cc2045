//! Batch commit against a real PostgreSQL: items queued together are written by one batch in
//! shared statements and commits, an item that fails leaves nothing behind while the others
//! commit, a batch that fails as a whole gives way to each item alone, and every answer is
//! what was committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::prelude::*;
use mesh_core::batch_commit::{Batch, BatchCommit, Outcomes};
use mesh_core::testing::fresh_postgres_db;
use mesh_core::{DbConnection, DbError};

mod support;
use support::{TEST_MIGRATIONS, test_effects, transaction_id};

/// Writes one row per item, all in one statement, noting the transaction. Every fifth item
/// fails after its row was written; item 7 makes any batch of more than one item fail as a
/// whole (after writing), and succeeds alone.
struct Notes {
    poisoned_batches: Arc<AtomicUsize>,
}

fn refuses(n: i32) -> bool {
    n % 5 == 0
}

fn poisons(n: i32) -> bool {
    n == 7
}

impl Batch for Notes {
    type Item = i32;
    type Output = String;
    type Error = DbError;

    fn apply(&self, conn: &mut DbConnection, items: &[i32]) -> Result<Outcomes<Self>, DbError> {
        let txid = transaction_id(conn)?;
        let rows: Vec<_> = items
            .iter()
            .map(|n| {
                (
                    test_effects::event_id.eq(format!("{n:03}")),
                    test_effects::note.eq(txid.clone()),
                )
            })
            .collect();
        let DbConnection::Postgres(pg) = conn else {
            return Err(DbError::Unavailable("a PostgreSQL target".into()));
        };
        diesel::insert_into(test_effects::table)
            .values(rows)
            .execute(pg)?;
        if items.len() > 1 && items.iter().copied().any(poisons) {
            self.poisoned_batches.fetch_add(1, Ordering::Relaxed);
            return Err(DbError::Unavailable("a poisoned batch".into()));
        }
        Ok(items
            .iter()
            .map(|&n| {
                if refuses(n) {
                    Err(DbError::Unavailable(format!("item {n} refuses")))
                } else {
                    Ok(txid.clone())
                }
            })
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_items_leave_nothing_and_the_rest_commit_together() {
    let db = fresh_postgres_db("batch_commit", TEST_MIGRATIONS).await;
    let poisoned_batches = Arc::new(AtomicUsize::new(0));
    let batches = BatchCommit::new(
        db.clone(),
        Notes {
            poisoned_batches: Arc::clone(&poisoned_batches),
        },
    );
    let submitted: Vec<_> = (0..200)
        .map(|n| {
            let batches = batches.clone();
            tokio::spawn(async move { (n, batches.submit(n).await) })
        })
        .collect();
    let mut answered = Vec::new();
    for item in submitted {
        answered.push(item.await.expect("item task"));
    }

    for (n, answer) in &answered {
        match answer {
            Ok(_) => assert!(!refuses(*n), "item {n} should have been refused"),
            Err(err) => {
                assert!(refuses(*n), "item {n} failed: {err}");
                assert!(err.to_string().contains("refuses"), "{err}");
            }
        }
    }
    let stored: std::collections::BTreeMap<String, String> = db
        .run(|conn| {
            test_effects::table
                .load::<(String, String)>(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("rows")
        .into_iter()
        .collect();
    // One row per item that succeeded (a doubled row would have collapsed in the map, so
    // count the rows too), none for the refused ones, and each answer names the committed
    // transaction its row was written in.
    let committed: Vec<_> = answered.iter().filter(|(_, a)| a.is_ok()).collect();
    assert_eq!(committed.len(), 160);
    assert_eq!(stored.len(), 160);
    for (n, answer) in committed {
        let txid = answer.as_ref().expect("committed");
        assert_eq!(stored.get(&format!("{n:03}")), Some(txid), "item {n}");
    }
    assert!(
        poisoned_batches.load(Ordering::Relaxed) > 0,
        "no batch failed as a whole: the path that runs items alone went untested"
    );
    assert!(stored.contains_key("007"), "the poisoning item, alone");
    let transactions: std::collections::BTreeSet<&String> = stored.values().collect();
    assert!(
        transactions.len() < 100,
        "{} transactions for 160 items",
        transactions.len()
    );
}
