//! The database of one service: PostgreSQL when `DATABASE_URL` is set, otherwise an embedded
//! SQLite file under `DATA_DIR`, so the one-command local run needs no database server.
//!
//! Both backends sit behind one [`DbConnection`] enum (diesel's `MultiConnection`), pooled with
//! r2d2 and migrated at startup from migrations embedded in each service binary. Diesel is
//! blocking, so [`Db::run`] moves every query onto Tokio's blocking pool: a slow query never
//! stalls the async executor threads that serve gRPC.

use std::path::PathBuf;
use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use crate::config::{ConfigError, env_or, optional_env};

/// The derive generates a backend enum and its methods without docs: they stay in here.
#[allow(missing_docs)]
mod connection {
    /// A connection to either backend; queries written with diesel's DSL run on both.
    #[derive(diesel::MultiConnection)]
    pub enum DbConnection {
        /// A PostgreSQL server (tests, Kubernetes).
        Postgres(diesel::PgConnection),
        /// An embedded SQLite file (the local one-command run).
        Sqlite(diesel::SqliteConnection),
    }
}
pub use connection::*;

/// Runs `$body` with `$c` bound to the backend's own connection (`&mut PgConnection` or
/// `&mut SqliteConnection`), the expression compiled once per backend.
///
/// Why: diesel's multi-backend connection renders a query's SQL text every time it runs it
/// (several times per statement: for the statement cache's key, the bind collection and the
/// cache check), even when the prepared statement is cached; on a backend's own connection a
/// query with a fixed shape is looked up by its type and its SQL is built once. Profiled under
/// load (callgrind, mypage-svc), that rendering was about a quarter of a consumer's
/// instructions. Use it for statements on the hot path; the rest may stay generic.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::DbConnection::Postgres($c) => $body,
            $crate::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// A service's embedded migrations, one set per backend (their DDL dialects differ).
pub struct Migrations {
    /// Applied on PostgreSQL.
    pub postgres: EmbeddedMigrations,
    /// Applied on SQLite.
    pub sqlite: EmbeddedMigrations,
}

/// The outbox and inbox tables ([`crate::outbox`], [`crate::consumer`]), applied to every
/// service's database before its own migrations.
const MESSAGING_MIGRATIONS: Migrations = Migrations {
    postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
    sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
};

/// Where a service keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbTarget {
    /// A PostgreSQL connection URL.
    Postgres(String),
    /// A SQLite database file.
    SqliteFile(PathBuf),
}

impl DbTarget {
    /// `DATABASE_URL` (postgres://…) if set, else `$DATA_DIR/<service>.sqlite3` (`DATA_DIR`
    /// defaults to `./data`). A `sqlite://PATH` URL picks a SQLite file explicitly.
    pub fn from_env(service: &str) -> Result<Self, ConfigError> {
        if let Some(url) = optional_env("DATABASE_URL") {
            return Ok(match url.strip_prefix("sqlite://") {
                Some(path) => Self::SqliteFile(PathBuf::from(path)),
                None => Self::Postgres(url),
            });
        }
        let dir: PathBuf = env_or("DATA_DIR", PathBuf::from("data"))?;
        Ok(Self::SqliteFile(dir.join(format!("{service}.sqlite3"))))
    }

    /// The target without credentials, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(url) => crate::config::redact_credentials(url),
            Self::SqliteFile(path) => format!("sqlite file {}", path.display()),
        }
    }
}

/// Anything that can go wrong between a service and its database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool (database down, pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// Migrations could not be applied at startup.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The blocking task running the query panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    /// The gRPC answer to a database failure, logged here once: UNAVAILABLE, naming `store`
    /// ("product") but not the cause, which stays in the log.
    pub fn into_status(self, store: &str) -> tonic::Status {
        tracing::error!(err = %self, store, "database failure");
        tonic::Status::unavailable(format!("{store} database unavailable, try again shortly"))
    }
}

/// A pooled, migrated database handle; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Connector>,
    /// Whether the target is PostgreSQL (many connections, row locks) rather than SQLite (one
    /// connection, one writer).
    postgres: bool,
}

/// Opens connections of the one backend the target names. (diesel's own manager for a
/// `MultiConnection` tries every backend in turn and, when PostgreSQL refuses, reports
/// "Invalid connection url for multiconnection", which hides a database that is simply down.)
#[derive(Debug)]
struct Connector {
    target: DbTarget,
}

impl ManageConnection for Connector {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        let connection = match &self.target {
            DbTarget::Postgres(url) => {
                diesel::PgConnection::establish(url).map(DbConnection::Postgres)
            }
            DbTarget::SqliteFile(path) => {
                diesel::SqliteConnection::establish(&path.to_string_lossy())
                    .map(DbConnection::Sqlite)
            }
        };
        connection.map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

impl Db {
    /// Connects to `target`, applies pending `migrations`, and returns a pool of at most
    /// `max_connections` connections (always one for SQLite: a single writer never meets
    /// SQLITE_BUSY, and SQLite is fast enough for the local run).
    pub async fn connect(
        target: &DbTarget,
        migrations: Migrations,
        max_connections: u32,
    ) -> Result<Self, DbError> {
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            Self::connect_blocking(&target, migrations, max_connections)
        })
        .await
        .map_err(|err| DbError::Task(err.to_string()))?
    }

    /// [`Db::connect`] once the database answers, waiting up to `wait` for it (a failed
    /// migration is final): a service installed together with its PostgreSQL, or restarted
    /// while the database restarts, waits for it instead of exiting.
    pub async fn connect_patiently(
        target: &DbTarget,
        migrations: Migrations,
        max_connections: u32,
        wait: Duration,
    ) -> Result<Self, DbError> {
        if !matches!(target, DbTarget::Postgres(_)) {
            // A SQLite file is created on connect: nothing to wait for.
            return Self::connect(target, migrations, max_connections).await;
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(200);
        loop {
            let probe = Connector {
                target: target.clone(),
            };
            let reached = tokio::task::spawn_blocking(move || probe.connect().map(drop))
                .await
                .map_err(|err| DbError::Task(err.to_string()))?;
            match reached {
                Err(reason) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(
                        target = %target.describe(),
                        %reason,
                        retry_in_ms = pause.as_millis() as u64,
                        "database unreachable; waiting for it"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                _ => return Self::connect(target, migrations, max_connections).await,
            }
        }
    }

    fn connect_blocking(
        target: &DbTarget,
        migrations: Migrations,
        max_connections: u32,
    ) -> Result<Self, DbError> {
        let size = match target {
            DbTarget::Postgres(_) => max_connections.max(1),
            DbTarget::SqliteFile(path) => {
                if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|err| {
                        DbError::Unavailable(format!("cannot create {}: {err}", dir.display()))
                    })?;
                }
                1
            }
        };
        // Connections open on demand (one kept idle), not all at start: ten services'
        // pools must fit in one PostgreSQL's max_connections. No validity query before each
        // use (r2d2's default): it is a round trip and a transaction on every call, and a
        // connection that broke (the database restarted) fails its next query instead, is
        // marked broken by diesel and dropped by the pool; the caller's error is what it
        // would have been a moment later anyway, and callers already retry or answer
        // UNAVAILABLE.
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(5))
            .connection_customizer(Box::new(SqlitePragmas))
            .build(Connector {
                target: target.clone(),
            })
            .map_err(|err| {
                DbError::Unavailable(format!("cannot connect to {}: {err}", target.describe()))
            })?;
        let mut conn = pool
            .get()
            .map_err(|err| DbError::Unavailable(err.to_string()))?;
        // The outbox and inbox tables every service shares first, then the service's own.
        let mut applied = 0;
        for set in [MESSAGING_MIGRATIONS, migrations] {
            applied += match &mut conn as &mut DbConnection {
                DbConnection::Postgres(pg) => migrate_exclusively(pg, set.postgres),
                DbConnection::Sqlite(sqlite) => sqlite
                    .run_pending_migrations(set.sqlite)
                    .map(|versions| versions.len()),
            }
            .map_err(|err| DbError::Migration(err.to_string()))?;
        }
        tracing::info!(target = %target.describe(), applied, "database ready");
        Ok(Self {
            pool,
            postgres: matches!(target, DbTarget::Postgres(_)),
        })
    }

    /// Runs `work` inside one database transaction on the blocking thread pool: everything it
    /// writes commits together or not at all (state change + outbox row, effect + inbox row).
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        self.run(move |conn| conn.transaction(work)).await
    }

    /// [`Db::transaction`] whose PostgreSQL transaction starts with `settings` (`SET LOCAL …`
    /// statements, separated by `;`) sent with its `BEGIN` in one round trip, where a
    /// separate statement would cost one more; SQLite has no such settings and ignores them.
    pub async fn transaction_with<T, E, F>(&self, settings: &'static str, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        self.run(move |conn| transaction_with(conn, settings, work))
            .await
    }

    /// A transaction that waits on async work in its middle: `open` runs first, its result
    /// goes to `between` on the runtime while the transaction stays open (its row locks
    /// held), then `close` runs with what `between` returned, and the transaction commits.
    /// `settings` as in [`Db::transaction_with`] (empty for none).
    ///
    /// For work that must hold rows while it talks to something else (delivering the
    /// notifications it locked, publishing the outbox rows it locked): should the process die
    /// in between, the locks go with its connection and the rows are free at once, where a
    /// claim written beforehand would keep them until it ran out, and would cost a write of
    /// every row. A failure of `open` or `close`, or `between` dropped midway, rolls back.
    /// Keep `between` short: it holds a pooled connection (and on SQLite, whose pool has one
    /// connection, every other caller waits for it).
    pub async fn transaction_around<A, B, T, E, Open, Between, Fut, Close>(
        &self,
        settings: &'static str,
        open: Open,
        between: Between,
        close: Close,
    ) -> Result<T, E>
    where
        Open: FnOnce(&mut DbConnection) -> Result<A, E> + Send + 'static,
        Between: FnOnce(A) -> Fut,
        Fut: std::future::Future<Output = B>,
        Close: FnOnce(&mut DbConnection, B) -> Result<T, E> + Send + 'static,
        A: Send + 'static,
        B: Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        let (opened, found) = tokio::sync::oneshot::channel();
        let (done, middle) = tokio::sync::oneshot::channel();
        let transaction = self.transaction_with(settings, move |conn| {
            let dropped = || E::from(DbError::Task("a transaction's middle was dropped".into()));
            opened.send(open(conn)?).map_err(|_| dropped())?;
            // The async side runs `between` while this thread holds the connection.
            let middle = middle.blocking_recv().map_err(|_| dropped())?;
            close(conn, middle)
        });
        tokio::pin!(transaction);
        let found = tokio::select! {
            found = found => found,
            ended = &mut transaction => return ended,
        };
        if let Ok(found) = found {
            let _ = done.send(between(found).await);
        }
        transaction.await
    }

    /// Runs `work` with a pooled connection on the blocking thread pool.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        // The caller's span follows the work onto the blocking thread, so what it logs and
        // the events it enqueues belong to the caller's trace.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool
                .get()
                .map_err(|err| DbError::Unavailable(err.to_string()))?;
            work(&mut conn)
        })
        .await
        .map_err(|err| E::from(DbError::Task(err.to_string())))?
    }
}

impl Db {
    /// Whether this is a PostgreSQL database: a transaction may then hold row locks while
    /// other connections go on, where SQLite's single connection would wait for it.
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// Connections (in use, idle) right now, for the pool gauges.
    pub fn pool_usage(&self) -> (u32, u32) {
        let state = self.pool.state();
        (
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
        )
    }
}

/// Per-connection SQLite settings: WAL for concurrent readers, a busy timeout instead of
/// instant SQLITE_BUSY errors, enforced foreign keys. PostgreSQL connections are untouched.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(sqlite) = conn {
            sqlite
                .batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// The advisory-lock key every replica of every service takes around its migrations
/// ("RMMIGRAT" as a big-endian integer): the same key in each database, so two replicas
/// starting together against one database migrate one after the other instead of racing to
/// create the same tables.
const MIGRATION_LOCK_KEY: i64 = 0x524d_4d49_4752_4154;

/// Runs `migrations` holding a session-level advisory lock, so that a second replica waits
/// for the first one's migrations and then finds nothing left to apply.
fn migrate_exclusively(
    conn: &mut diesel::PgConnection,
    migrations: EmbeddedMigrations,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)?;
    let applied = conn
        .run_pending_migrations(migrations)
        .map(|versions| versions.len());
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn);
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

/// Runs `work` in a transaction begun with `settings` on PostgreSQL ([`Db::transaction_with`]):
/// committed if it succeeds, rolled back if it fails, as diesel's `Connection::transaction`.
pub fn transaction_with<T, E, F>(conn: &mut DbConnection, settings: &str, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConnection as Connection>::TransactionManager;
    match conn {
        DbConnection::Postgres(pg) if !settings.is_empty() => {
            // The derived enum's transaction state is its backend connection's, so a
            // transaction begun on `pg` is the enum's to commit.
            AnsiTransactionManager::begin_transaction_sql(pg, &format!("BEGIN; {settings}"))?;
        }
        _ => Manager::begin_transaction(conn)?,
    }
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => match Manager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(err),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_hides_credentials() {
        let target = DbTarget::Postgres("postgres://user:secret@db:5432/product".into());
        assert_eq!(target.describe(), "postgres://user:***@db:5432/product");
        let query = DbTarget::Postgres("postgres://db/product?password=secret".into());
        assert_eq!(query.describe(), "postgres://db/product?***");
    }
}
