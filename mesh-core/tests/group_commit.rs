//! Group commit against a real PostgreSQL: members that arrive together share commits, each
//! keeps its own all-or-nothing, and nobody is answered before its effect is durable.

use std::sync::Arc;

use diesel::prelude::*;
use mesh_core::DbError;
use mesh_core::group_commit::GroupCommit;
use mesh_core::testing::fresh_postgres_db;

mod support;
use support::{TEST_MIGRATIONS, test_effects, transaction_id};

fn insert(conn: &mut mesh_core::DbConnection, id: &str, note: &str) -> Result<(), DbError> {
    diesel::insert_into(test_effects::table)
        .values((test_effects::event_id.eq(id), test_effects::note.eq(note)))
        .execute(conn)?;
    Ok(())
}

fn rows(conn: &mut mesh_core::DbConnection) -> Result<Vec<(String, String)>, DbError> {
    Ok(test_effects::table
        .order(test_effects::event_id)
        .load::<(String, String)>(conn)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_member_commits_or_not_on_its_own_and_members_share_commits() {
    let db = fresh_postgres_db("group_commit", TEST_MIGRATIONS).await;
    let group = Arc::new(GroupCommit::new(db.clone()));
    let members: Vec<_> = (0..200)
        .map(|n| {
            let group = Arc::clone(&group);
            tokio::spawn(async move {
                group
                    .transaction(move |conn| {
                        let id = format!("{n:03}");
                        let txid = transaction_id(conn)?;
                        insert(conn, &id, &txid)?;
                        // Every fifth fails after its first write: that write must go too.
                        if n % 5 == 0 {
                            return Err(DbError::Unavailable(format!("member {n} refuses")));
                        }
                        insert(conn, &id, &format!("{txid} again"))?;
                        Ok(n)
                    })
                    .await
            })
        })
        .collect();
    let mut answered = Vec::new();
    for member in members {
        answered.push(member.await.expect("member task"));
    }
    let succeeded: Vec<i32> = answered
        .iter()
        .filter_map(|a| a.as_ref().ok().copied())
        .collect();
    assert_eq!(succeeded.len(), 160);
    assert!(
        answered
            .iter()
            .filter_map(|a| a.as_ref().err())
            .all(|err| err.to_string().contains("refuses"))
    );

    let stored = db.run(rows).await.expect("rows");
    assert_eq!(
        stored.len(),
        320,
        "two rows per member that succeeded, none of the others"
    );
    assert!(
        stored
            .iter()
            .all(|(id, _)| id.parse::<i32>().expect("id") % 5 != 0)
    );

    // Each row notes the transaction it was written in: members that arrived together
    // shared transactions, so there are far fewer of them than members.
    let transactions: std::collections::BTreeSet<&str> = stored
        .iter()
        .map(|(_, note)| note.trim_end_matches(" again"))
        .collect();
    assert!(
        transactions.len() < 100,
        "{} transactions for 160 members",
        transactions.len()
    );
}
