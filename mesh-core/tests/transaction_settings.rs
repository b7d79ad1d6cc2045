//! `Db::transaction_with` against a real PostgreSQL: the settings hold inside the
//! transaction and end with it, a failure rolls back, and the connection is left ready for
//! the next transaction either way.

use diesel::prelude::*;
use mesh_core::db::transaction_with;
use mesh_core::testing::fresh_postgres_db;
use mesh_core::{DbConnection, DbError};

mod support;
use support::{TEST_MIGRATIONS, test_effects};

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    lock_timeout: String,
}

fn lock_timeout(conn: &mut DbConnection) -> Result<String, DbError> {
    let setting: Setting = diesel::sql_query("SHOW lock_timeout").get_result(conn)?;
    Ok(setting.lock_timeout)
}

fn note(conn: &mut DbConnection, key: &str) -> Result<usize, DbError> {
    Ok(diesel::insert_into(test_effects::table)
        .values((test_effects::event_id.eq(key), test_effects::note.eq("x")))
        .execute(conn)?)
}

#[tokio::test]
async fn settings_hold_inside_the_transaction_and_end_with_it() {
    let db = fresh_postgres_db("transaction_settings", TEST_MIGRATIONS).await;
    let (before, inside, after, kept, rolled_back) = db
        .run(|conn| -> Result<_, DbError> {
            let before = lock_timeout(conn)?;
            let inside = transaction_with(conn, "SET LOCAL lock_timeout = '50ms'", |conn| {
                note(conn, "committed")?;
                lock_timeout(conn)
            })?;
            let after = lock_timeout(conn)?;
            let failed: Result<(), DbError> =
                transaction_with(conn, "SET LOCAL lock_timeout = '50ms'", |conn| {
                    note(conn, "rolled back")?;
                    Err(DbError::Unavailable("the work failed".into()))
                });
            assert!(failed.is_err());
            // The connection is out of both transactions: a plain one begins and commits.
            let kept: Vec<String> = conn.transaction(|conn| {
                test_effects::table
                    .select(test_effects::event_id)
                    .load::<String>(conn)
            })?;
            let rolled_back = !kept.iter().any(|key| key == "rolled back");
            Ok((before, inside, after, kept, rolled_back))
        })
        .await
        .expect("transactions");
    assert_eq!(inside, "50ms");
    assert_eq!(before, after, "a SET LOCAL outlived its transaction");
    assert_ne!(before, inside);
    assert_eq!(kept, vec!["committed".to_owned()]);
    assert!(rolled_back);
}
