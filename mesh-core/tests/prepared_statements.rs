//! `mesh_core::prepared` against a real PostgreSQL: a fixed statement is prepared once per
//! connection and reused with new parameters, where the same text through `sql_query` is
//! parsed again every time and never kept.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::AstPass;
use diesel::sql_types::{Array, BigInt};
use mesh_core::prepared::{FixedStatement, Prepared};
use mesh_core::testing::fresh_postgres_db;
use mesh_core::{DbConnection, DbError};

mod support;
use support::TEST_MIGRATIONS;

/// The sum of an array and a number; its text names itself so the test can find it among
/// the connection's prepared statements.
struct SumPlus {
    values: Vec<i64>,
    plus: i64,
}

impl FixedStatement for SumPlus {
    type Key = Self;

    fn write<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT (SELECT coalesce(sum(v), 0) FROM unnest(");
        out.push_bind_param::<Array<BigInt>, _>(&self.values)?;
        out.push_sql("::int8[]) AS v)::int8 + ");
        out.push_bind_param::<BigInt, _>(&self.plus)?;
        out.push_sql(" AS total /* prepared_statements_test */");
        Ok(())
    }
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// How many statements this connection holds prepared whose text mentions the test's marker.
fn prepared_here(pg: &mut PgConnection) -> QueryResult<i64> {
    let found: Count = diesel::sql_query(
        "SELECT count(*) AS count FROM pg_prepared_statements \
         WHERE statement LIKE '%prepared_statements_test%'",
    )
    .get_result(pg)?;
    Ok(found.count)
}

#[tokio::test]
async fn a_fixed_statement_is_prepared_once_and_answers_for_new_parameters() {
    let db = fresh_postgres_db("prepared_statements", TEST_MIGRATIONS).await;
    let (first, second, empty, held, by_text) = db
        .run(|conn| -> Result<_, DbError> {
            let DbConnection::Postgres(pg) = conn else {
                return Err(DbError::Task("not PostgreSQL".into()));
            };
            let before = prepared_here(pg)?;
            let total = |pg: &mut PgConnection, values: Vec<i64>, plus| {
                Prepared(SumPlus { values, plus }).get_result::<Total>(pg)
            };
            let first = total(pg, vec![1, 2, 3], 10)?.total;
            let second = total(pg, vec![5, 7], 100)?.total;
            let empty = total(pg, Vec::new(), -4)?.total;
            let held = prepared_here(pg)? - before;
            // The same text as SQL text: run, but nothing more is kept.
            let _: Total = diesel::sql_query(
                "SELECT 1::int8 AS total /* prepared_statements_test, as text */",
            )
            .get_result(pg)?;
            let by_text = prepared_here(pg)? - before - held;
            Ok((first, second, empty, held, by_text))
        })
        .await
        .expect("statements run");
    assert_eq!((first, second, empty), (16, 112, -4));
    assert_eq!(
        held, 1,
        "three runs of one fixed statement hold one prepared statement"
    );
    assert_eq!(by_text, 0, "SQL text is not kept prepared");
}
