//! Replicas of one service starting together against one fresh database (a Deployment
//! scaled to several pods, a rollout) migrate it one after the other: every one of them
//! starts, and the schema is applied once.

use diesel::prelude::*;
use mesh_core::db::DbTarget;
use mesh_core::testing::fresh_postgres_database;
use mesh_core::{Db, Migrations};

/// One slow migration (plus the shared ones); the SQLite half is never used here.
const SLOW_MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("tests/migrations/postgres_slow"),
    sqlite: diesel_migrations::embed_migrations!("tests/migrations/sqlite"),
};

const REPLICAS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_each_migrate_without_racing() {
    let target = DbTarget::Postgres(fresh_postgres_database("migration_race"));
    let starts = (0..REPLICAS).map(|_| {
        let target = target.clone();
        tokio::spawn(async move { Db::connect(&target, SLOW_MIGRATIONS, 2).await })
    });
    let mut dbs = Vec::new();
    for start in starts {
        let db = start
            .await
            .expect("start task")
            .expect("every replica connects and finds its schema migrated");
        dbs.push(db);
    }

    let applied: i64 = dbs[0]
        .run(|conn| {
            let mesh_core::DbConnection::Postgres(pg) = conn else {
                unreachable!("a PostgreSQL target")
            };
            diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
                .get_result::<Count>(pg)
                .map(|row| row.n)
                .map_err(mesh_core::DbError::from)
        })
        .await
        .expect("count migrations");
    // The shared messaging migrations (two) and the slow one, each recorded once.
    assert_eq!(applied, 3, "every migration is recorded exactly once");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}
