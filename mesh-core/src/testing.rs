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
    // sslmode=disable: the loopback server needs no TLS, and libpq's TLS attempt (OpenSSL)
    // in an r2d2 worker still connecting when a test binary exits crashes in OpenSSL's exit
    // cleanup (seen as a SIGSEGV in `r2d2-worker` after every test had passed).
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}?sslmode=disable"),
        None => panic!("TEST_DATABASE_ADMIN_URL has no database path: {admin}"),
    }
}

/// How many inbox rows (`processed_events`) the PostgreSQL database `db` holds: for tests of
/// a consumer that must keep none ([`crate::consumer::KeyedEffect`]).
pub fn inbox_rows(db: &crate::db::DbTarget) -> i64 {
    let crate::db::DbTarget::Postgres(url) = db else {
        panic!("inbox rows are counted on PostgreSQL, not {db:?}");
    };
    let mut conn = PgConnection::establish(url)
        .unwrap_or_else(|err| panic!("cannot open the service's database {url}: {err}"));
    diesel::RunQueryDsl::get_result(
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM processed_events)",
        )),
        &mut conn,
    )
    .unwrap_or_else(|err| panic!("cannot count inbox rows: {err}"))
}

/// A fresh PostgreSQL database with `migrations` (and the outbox and inbox tables) applied,
/// as a service's pool of two connections.
pub async fn fresh_postgres_db(label: &str, migrations: crate::db::Migrations) -> crate::Db {
    let target = crate::db::DbTarget::Postgres(fresh_postgres_database(label));
    crate::Db::connect(&target, migrations, 2)
        .await
        .unwrap_or_else(|err| panic!("cannot prepare test database {label}: {err}"))
}

/// Applies `events` through `handler` one at a time, each in a transaction of its own: what
/// a consumer does with a message it cannot take in a batch.
pub async fn apply_one_at_a_time(
    db: &crate::Db,
    handler: std::sync::Arc<dyn crate::consumer::EventHandler>,
    events: &[reserve_proto::events::v1::EventEnvelope],
) {
    for event in events {
        let (handler, event) = (std::sync::Arc::clone(&handler), event.clone());
        db.transaction(move |conn| handler.apply(conn, &event))
            .await
            .unwrap_or_else(|err| panic!("applying one event: {err}"));
    }
}

/// Applies `events` through `handler` as one consumer batch ([`EventHandler::apply_batch`],
/// every event in one span) in one transaction.
///
/// [`EventHandler::apply_batch`]: crate::consumer::EventHandler::apply_batch
pub async fn apply_as_one_batch(
    db: &crate::Db,
    handler: std::sync::Arc<dyn crate::consumer::EventHandler>,
    events: &[reserve_proto::events::v1::EventEnvelope],
) {
    let events = events.to_vec();
    db.transaction(move |conn| {
        let span = tracing::Span::none();
        handler.apply_batch(conn, &batched(&events, &span))
    })
    .await
    .unwrap_or_else(|err| panic!("applying the batch: {err}"));
}

/// Applies `events` as one consumer batch the way the consumer applies a handler without an
/// inbox ([`KeyedEffect::apply_new`], no transaction around it); returns the ids of the
/// events it says it applied now. Panics for a handler that is not keyed.
///
/// [`KeyedEffect::apply_new`]: crate::consumer::KeyedEffect::apply_new
pub async fn apply_keyed_batch(
    db: &crate::Db,
    handler: std::sync::Arc<dyn crate::consumer::EventHandler>,
    events: &[reserve_proto::events::v1::EventEnvelope],
) -> std::collections::HashSet<String> {
    let events = events.to_vec();
    db.run(move |conn| {
        let span = tracing::Span::none();
        let keyed = handler.keyed().expect("a keyed handler");
        keyed.apply_new(conn, &batched(&events, &span))
    })
    .await
    .unwrap_or_else(|err: crate::consumer::HandleError| panic!("applying the batch: {err}"))
}

/// `events` as a consumer batch, every one in `span`.
fn batched<'a>(
    events: &'a [reserve_proto::events::v1::EventEnvelope],
    span: &'a tracing::Span,
) -> Vec<crate::consumer::Batched<'a>> {
    events
        .iter()
        .map(|envelope| crate::consumer::Batched { envelope, span })
        .collect()
}

/// A loopback port that was free a moment ago and that no other caller in this process has
/// been given: tests running in parallel in one binary never pick the same port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A private NATS server with JetStream for one test: its own port and store directory, so
/// tests running in parallel never see each other's streams. Killed when dropped.
pub struct TestNats {
    child: std::process::Child,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    /// Its JetStream store directory (kept across [`TestNats::restart`]).
    pub store_dir: std::path::PathBuf,
}

impl TestNats {
    /// Starts `nats-server -js` on a free loopback port and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let store_dir = std::env::temp_dir().join(format!(
            "rm-test-nats-{}-{}-{port}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        Self::start_on(port, store_dir)
    }

    fn start_on(port: u16, store_dir: std::path::PathBuf) -> Self {
        std::fs::create_dir_all(&store_dir).expect("create NATS store dir");
        // Debian's package, a manual install, or the copy script/test unpacks into .tools/bin.
        let binary = [
            "/usr/sbin/nats-server",
            "/usr/local/bin/nats-server",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/bin/nats-server"),
            "nats-server",
        ]
        .into_iter()
        .find(|candidate| !candidate.starts_with('/') || std::path::Path::new(candidate).exists())
        .unwrap_or("nats-server");
        let child = std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("tests need nats-server (script/test installs it): {err}")
            });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store_dir,
        }
    }

    /// Stops the server (its data stays on disk).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with an empty store: streams and consumers gone, as
    /// after a server replaced without its volume.
    pub fn restart_empty(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store_dir);
        self.restart();
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        let again = Self::start_on(self.port, self.store_dir.clone());
        let old = std::mem::replace(self, again);
        std::mem::forget(old);
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

impl TestNats {
    /// Publishes `event` to the events stream (creating it if needed) as an outbox would, and
    /// waits for JetStream's ack: for tests of a consumer without the service that owns the
    /// event. Like the relay, it retries a publish that got no ack (a loaded machine's
    /// JetStream may be slow to answer); the event id makes a repeat a duplicate, not a copy.
    pub async fn publish(&self, event: &crate::events::OutgoingEvent) {
        let js = crate::events::connect(&self.url, "test-publisher")
            .await
            .expect("connect to the test NATS");
        crate::events::provision_patiently(&js, crate::events::PROVISION_PATIENCE)
            .await
            .expect("provision the test streams");
        let mut attempts_left = 10;
        loop {
            let message = async_nats::jetstream::message::PublishMessage::build()
                .payload(event.payload.clone().into())
                .message_id(&event.event_id);
            let acked = async {
                js.send_publish(event.subject.clone(), message)
                    .await?
                    .await
                    .map_err(async_nats::Error::from)
            };
            match acked.await {
                Ok(_) => return,
                Err(err) if attempts_left > 0 => {
                    attempts_left -= 1;
                    eprintln!("publishing a test event got no ack ({err}); retrying");
                }
                Err(err) => panic!("JetStream never acked the test event: {err}"),
            }
        }
    }
}

/// Polls `check` every 20 ms until it yields a value, at most `limit`; returns that value.
/// Fails the test naming `what` when time runs out: what a test does instead of sleeping a
/// fixed time and hoping the system got there.
pub async fn wait_until<T, F, Fut>(what: &str, limit: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The common settings of a service started in process by a test: loopback port 0, a fresh
/// PostgreSQL database named after `label`, the test's NATS, `jwt` auth over [`test_issuer`].
pub fn service_config(label: &str, nats: &TestNats) -> crate::service::ServiceConfig {
    crate::service::ServiceConfig {
        auth: test_auth(),
        ..crate::service::ServiceConfig::local(
            crate::db::DbTarget::Postgres(fresh_postgres_database(label)),
            &nats.url,
        )
    }
}

/// A channel to a service a test started at `addr`.
pub async fn channel_to(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a loopback URL")
        .connect()
        .await
        .unwrap_or_else(|err| panic!("connect to the service at {addr}: {err}"))
}

/// The event that starts every buyer's story, as reservation-svc's outbox would send it
/// (version 1): reservation `reservation_id` of product 3, "Coffee", sold by "lee".
pub fn reservation_placed(reservation_id: i64, customer: &str) -> crate::events::OutgoingEvent {
    let event = reserve_proto::events::v1::ReservationPlaced {
        reservation_id,
        product_id: 3,
        customer_id: customer.into(),
        product_name: "Coffee".into(),
        seller_id: "lee".into(),
    };
    crate::events::OutgoingEvent::new(&event, 1)
}

/// A service a test started in process: asks it to stop (and drain) when dropped, so a test
/// that ends or panics leaves nothing serving.
#[derive(Debug)]
pub struct StopOnDrop(crate::Shutdown);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// Runs a built service (`|shutdown| app.run(shutdown)`) on the test's runtime until the
/// returned guard is dropped.
pub fn serve_until_dropped<F>(run: impl FnOnce(crate::Shutdown) -> F) -> StopOnDrop
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let shutdown = crate::Shutdown::new();
    tokio::spawn(run(shutdown.clone()));
    StopOnDrop(shutdown)
}

/// A service a test runs in process: a client of it, the private NATS it uses, and the guard
/// that stops it when the test ends.
pub struct InProcess<C> {
    /// A client connected to the service.
    pub client: C,
    /// The service's NATS, for publishing the events it consumes.
    pub nats: TestNats,
    _stop: StopOnDrop,
}

impl<C> InProcess<C> {
    /// Serves a built service listening at `addr` (`run`: `|shutdown| app.run(shutdown)`) and
    /// connects `client` (e.g. `FooServiceClient::new`) to it.
    pub async fn serve<F>(
        nats: TestNats,
        addr: std::net::SocketAddr,
        run: impl FnOnce(crate::Shutdown) -> F,
        client: impl FnOnce(tonic::transport::Channel) -> C,
    ) -> Self
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let channel = channel_to(addr).await;
        let stop = serve_until_dropped(run);
        Self {
            client: client(channel),
            nats,
            _stop: stop,
        }
    }
}

/// The token issuer of in-process tests: one dev key pair per test process.
pub fn test_issuer() -> &'static crate::auth::dev_keys::DevIssuer {
    static ISSUER: std::sync::OnceLock<crate::auth::dev_keys::DevIssuer> =
        std::sync::OnceLock::new();
    ISSUER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rm-test-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        crate::auth::dev_keys::DevIssuer::open_or_create(&dir).expect("test token keys")
    })
}

/// `jwt` mode over [`test_issuer`]'s keys: what in-process tests of the rules run with.
pub fn test_auth() -> crate::auth::AuthConfig {
    let mut config = crate::auth::AuthConfig::dev(Some(test_issuer().jwks_path().to_path_buf()));
    config.mode = crate::auth::AuthMode::Jwt;
    config
}

/// `message` as a request from `subject` with `roles`, signed by [`test_issuer`].
pub fn as_user<T>(message: T, subject: &str, roles: &[crate::auth::Role]) -> tonic::Request<T> {
    let token = test_issuer().mint(subject, roles, 3600);
    crate::auth::grpc::on_behalf_of(message, Some(&format!("Bearer {token}")))
}
