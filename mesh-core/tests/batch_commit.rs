//! Batch commit against a real PostgreSQL: items queued together are written by one batch in
//! shared statements and commits, an item that fails leaves nothing behind while the others
//! commit, a batch that fails as a whole gives way to each item alone, and every answer is
//! what was committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::connection::TransactionManager;
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

/// Submits items `0..count` at once, each from its own task; their answers, by item.
async fn submit_together<B: Batch<Item = i32>>(
    batches: &BatchCommit<B>,
    count: i32,
) -> Vec<(i32, Result<B::Output, B::Error>)> {
    let submitted: Vec<_> = (0..count)
        .map(|n| {
            let batches = batches.clone();
            tokio::spawn(async move { (n, batches.submit(n).await) })
        })
        .collect();
    let mut answered = Vec::new();
    for item in submitted {
        answered.push(item.await.expect("item task"));
    }
    answered
}

/// Every row written, note by key.
async fn stored_notes(db: &mesh_core::Db) -> std::collections::BTreeMap<String, String> {
    db.run(|conn| {
        test_effects::table
            .load::<(String, String)>(conn)
            .map_err(DbError::from)
    })
    .await
    .expect("rows")
    .into_iter()
    .collect()
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
    let answered = submit_together(&batches, 200).await;

    for (n, answer) in &answered {
        match answer {
            Ok(_) => assert!(!refuses(*n), "item {n} should have been refused"),
            Err(err) => {
                assert!(refuses(*n), "item {n} failed: {err}");
                assert!(err.to_string().contains("refuses"), "{err}");
            }
        }
    }
    let stored = stored_notes(&db).await;
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

/// Writes one row per item in a single statement, each row noting whether a transaction had
/// been begun on the connection before it (`true` when none was: no `BEGIN` went ahead of
/// it) and which transaction it was. A batch of more than one item holding item 7 fails
/// before writing.
struct Stamps;

impl Batch for Stamps {
    type Item = i32;
    type Output = String;
    type Error = DbError;

    fn apply(&self, conn: &mut DbConnection, items: &[i32]) -> Result<Outcomes<Self>, DbError> {
        #[derive(QueryableByName)]
        struct Written {
            #[diesel(sql_type = diesel::sql_types::Text)]
            note: String,
        }
        if items.len() > 1 && items.iter().copied().any(poisons) {
            return Err(DbError::Unavailable("a poisoned batch".into()));
        }
        let outside_transaction =
            <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
                .transaction_depth()?
                .is_none();
        let DbConnection::Postgres(pg) = conn else {
            return Err(DbError::Unavailable("a PostgreSQL target".into()));
        };
        let keys: Vec<String> = items.iter().map(|n| format!("{n:03}")).collect();
        let written = diesel::sql_query(
            "INSERT INTO test_effects (event_id, note) \
             SELECT key, $2 || ' ' || txid_current()::text \
             FROM unnest($1::text[]) AS key RETURNING note",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(keys)
        .bind::<diesel::sql_types::Text, _>(outside_transaction.to_string())
        .load::<Written>(pg)?;
        Ok(written.into_iter().map(|row| Ok(row.note)).collect())
    }

    fn one_statement(&self, _conn: &DbConnection, _items: &[i32]) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_statement_batch_is_its_own_transaction_without_begin_or_commit() {
    let db = fresh_postgres_db("batch_one_statement", TEST_MIGRATIONS).await;
    let batches = BatchCommit::new(db.clone(), Stamps);
    let answered: Vec<(i32, String)> = submit_together(&batches, 120)
        .await
        .into_iter()
        .map(|(n, answer)| (n, answer.unwrap_or_else(|err| panic!("item {n}: {err}"))))
        .collect();
    let stored = stored_notes(&db).await;
    assert_eq!(stored.len(), 120, "every item committed once");
    for (n, note) in &answered {
        assert_eq!(stored.get(&format!("{n:03}")), Some(note), "item {n}");
    }
    // Rows are written without BEGIN, batched, except the items of a batch that held item
    // 7: that batch failed and each of its items ran again alone, in a transaction of its own.
    let mut per_transaction: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for note in stored.values() {
        let (outside, txid) = note.split_once(' ').expect("a note");
        per_transaction.entry(txid).or_default().push(outside);
    }
    for (txid, rows) in &per_transaction {
        if rows.contains(&"false") {
            assert_eq!(
                rows.len(),
                1,
                "transaction {txid} begun for more than one item"
            );
        }
    }
    let with_begin = stored
        .values()
        .filter(|note| note.starts_with("false"))
        .count();
    // One batch at most failed (item 7 succeeds alone): at most a full group reran alone.
    assert!(
        with_begin <= mesh_core::group_commit::MAX_GROUP,
        "{with_begin} items written after a BEGIN"
    );
    assert!(
        per_transaction.len() < 100,
        "{} transactions for 120 items: not batched",
        per_transaction.len()
    );
}
