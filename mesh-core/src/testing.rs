//! Test support: a fresh, empty PostgreSQL database per test, so tests never share state and
//! can run in parallel against the one server on the machine.
//!
//! The server is taken from `TEST_DATABASE_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Databases are named `rm_test_*`;
//! `script/test` drops leftovers of earlier runs before it starts.

use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// Prefix of every database a test creates.
pub const TEST_DATABASE_PREFIX: &str = "rm_test_";

/// The PostgreSQL server used for test databases.
pub fn admin_url() -> String {
    crate::config::optional_env("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates an empty database and returns its URL. Panics (it is for tests) with a clear
/// message when no PostgreSQL answers.
pub fn fresh_postgres_database(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let name = format!(
        "{TEST_DATABASE_PREFIX}{}_{}_{}_{nanos}",
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    )
    .to_lowercase();
    let admin = admin_url();
    let mut conn = PgConnection::establish(&admin)
        .unwrap_or_else(|err| panic!("tests need PostgreSQL at {admin}: {err}"));
    conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("TEST_DATABASE_ADMIN_URL has no database path: {admin}"),
    }
}
