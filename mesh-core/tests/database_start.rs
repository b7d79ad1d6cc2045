//! How a service meets its database at start: replicas starting together against one fresh
//! database (a Deployment scaled to several pods, a rollout) migrate it one after the other,
//! and a service started before its database answers (a fresh Helm install) waits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use mesh_core::db::DbTarget;
use mesh_core::testing::fresh_postgres_database;
use mesh_core::{Db, Migrations};
use tokio::net::{TcpListener, TcpStream};

/// One slow migration (plus the shared ones); the SQLite half is never used here.
const SLOW_MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("tests/migrations/postgres_slow"),
    sqlite: diesel_migrations::embed_migrations!("tests/migrations/sqlite"),
};

const REPLICAS: usize = 16;

/// How long the stand-in database refuses connections.
const STARTING_FOR: Duration = Duration::from_secs(6);

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
    // The shared messaging migrations (three) and the slow one, each recorded once.
    assert_eq!(applied, 4, "every migration is recorded exactly once");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The database's address in a PostgreSQL URL (`host:port` after the credentials).
fn server_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

#[tokio::test]
async fn a_service_started_before_its_database_answers_waits_for_it() {
    let url = fresh_postgres_database("database_late");
    let server = server_of(&url);
    // A stand-in for a PostgreSQL still starting: for 6 s from the first attempt (longer
    // than one connect's own 5 s pool timeout, so only a service that waits gets through)
    // connections are dropped at once; later ones are forwarded to the real server.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let front = listener.local_addr().expect("address");
    let refused = Arc::new(AtomicUsize::new(0));
    let refusals = refused.clone();
    tokio::spawn(async move {
        let mut first_attempt = None;
        while let Ok((mut client, _)) = listener.accept().await {
            let since = *first_attempt.get_or_insert_with(Instant::now);
            if since.elapsed() < STARTING_FOR {
                refusals.fetch_add(1, Ordering::SeqCst);
                drop(client);
                continue;
            }
            let server = server.clone();
            tokio::spawn(async move {
                if let Ok(mut upstream) = TcpStream::connect(&server).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    let late = url.replacen(&server_of(&url), &front.to_string(), 1);

    let db = Db::connect_patiently(
        &DbTarget::Postgres(late),
        SLOW_MIGRATIONS,
        2,
        Duration::from_secs(30),
    )
    .await
    .expect("the service waits for its database, then starts");
    assert!(
        refused.load(Ordering::SeqCst) >= 2,
        "it tried while the database was not answering"
    );
    db.run(|conn| {
        let mesh_core::DbConnection::Postgres(pg) = conn else {
            unreachable!("a PostgreSQL target")
        };
        diesel::sql_query("SELECT count(*) AS n FROM slow_table")
            .get_result::<Count>(pg)
            .map_err(mesh_core::DbError::from)
    })
    .await
    .expect("migrated once it could reach the database");
}

#[tokio::test]
async fn without_patience_an_unreachable_database_fails_the_start_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let nobody = listener.local_addr().expect("address");
    drop(listener);
    let url = format!("postgres://postgres@{nobody}/absent?sslmode=disable");
    let outcome =
        Db::connect_patiently(&DbTarget::Postgres(url), SLOW_MIGRATIONS, 2, Duration::ZERO).await;
    assert!(
        matches!(outcome, Err(mesh_core::DbError::Unavailable(_))),
        "an unreachable database is reported as unavailable"
    );
}
