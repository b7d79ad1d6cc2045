//! The shape every service shares, written once: the configuration every service reads, and
//! the host that runs it (database migrated, gRPC listener bound with health and reflection,
//! the event backbone, background tasks), all stopped and drained by one [`Shutdown`].
//!
//! A service's `App::build` is then only what is its own: the API it serves, the events it
//! subscribes to, the tasks it runs beside them.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tonic::server::NamedService;

use crate::auth::{AuthConfig, AuthMode, Authenticator};
use crate::config::env_or;
use crate::db::{Db, DbTarget, Migrations};
use crate::grpc_server::{GrpcShell, MeshRouter};
use crate::messaging::{Messaging, MessagingConfig, drain};
use crate::telemetry::catalog;
use crate::{ConfigError, Shutdown, StartupError};

/// How long background tasks get to finish after the server drained.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// What every service reads from its environment.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// gRPC listen address (`GRPC_ADDR`).
    pub grpc_addr: SocketAddr,
    /// Database (`DATABASE_URL`, else SQLite under `DATA_DIR`).
    pub db: DbTarget,
    /// PostgreSQL pool size (`DB_POOL_SIZE`, default 16).
    pub db_pool_size: u32,
    /// How long start-up waits for an unreachable database (`DB_WAIT_SECS`, default 60):
    /// pods installed together with their PostgreSQL wait for it instead of crash-looping.
    pub db_wait: Duration,
    /// The event backbone (`NATS_URL`, `CONSUMER_*`).
    pub messaging: MessagingConfig,
    /// How callers are verified (`AUTH_*`).
    pub auth: AuthConfig,
}

impl ServiceConfig {
    /// Reads the common variables; `GRPC_ADDR` defaults to `0.0.0.0:<default_port>` and the
    /// SQLite file to `$DATA_DIR/<db_name>.sqlite3`.
    pub fn from_env(db_name: &str, default_port: u16) -> Result<Self, ConfigError> {
        Ok(Self {
            grpc_addr: env_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], default_port)))?,
            db: DbTarget::from_env(db_name)?,
            db_pool_size: env_or("DB_POOL_SIZE", 16)?,
            db_wait: Duration::from_secs(env_or("DB_WAIT_SECS", 60)?),
            messaging: MessagingConfig::from_env()?,
            auth: AuthConfig::from_env()?,
        })
    }

    /// A service on a free loopback port over `db` and the NATS at `nats_url`, with default
    /// consumer settings, in dev auth mode without keys (calls are `anonymous`): what tests
    /// start.
    pub fn local(db: DbTarget, nats_url: &str) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db,
            db_pool_size: 8,
            db_wait: Duration::ZERO,
            messaging: MessagingConfig {
                nats_url: nats_url.to_owned(),
                consumer: Default::default(),
            },
            auth: AuthConfig::dev(None),
        }
    }
}

type BackgroundTask = Box<dyn FnOnce(Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A service's running parts, ready to serve.
pub struct ServiceHost {
    name: &'static str,
    shell: GrpcShell,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    messaging: Messaging,
    db: Db,
    authenticator: Arc<Authenticator>,
    internal: Option<InternalListener>,
    background: Vec<BackgroundTask>,
}

/// The second listener, for calls between services and for operators: never routed to by
/// the gateway, and kept to the mesh by the chart's network policies.
struct InternalListener {
    shell: GrpcShell,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
}

impl ServiceHost {
    /// Connects and migrates the database, connects to NATS (without waiting for it), and
    /// binds the gRPC listener whose reflection advertises `apis` (fully qualified service
    /// names). Returns the host and the database for the service's own parts.
    pub async fn start(
        name: &'static str,
        config: &ServiceConfig,
        migrations: Migrations,
        apis: &[&str],
    ) -> Result<(Self, Db), StartupError> {
        let db = Db::connect_patiently(&config.db, migrations, config.db_pool_size, config.db_wait)
            .await?;
        let listener = crate::startup::bind(config.grpc_addr).await?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
        let messaging = Messaging::connect(&config.messaging, name, db.clone()).await?;
        let authenticator = Arc::new(Authenticator::new(&config.auth));
        authenticator.load_keys().await;
        let mut host = Self {
            name,
            shell: GrpcShell::new(apis, authenticator.clone())?,
            listener,
            local_addr,
            messaging,
            db: db.clone(),
            authenticator: authenticator.clone(),
            internal: None,
            background: Vec::new(),
        };
        if authenticator.mode() == AuthMode::Dev {
            host.spawn_on_run(crate::auth::remind_of_dev_mode);
        }
        let expiring = db.clone();
        host.spawn_on_run(|shutdown| expire_request_keys(expiring, shutdown));
        Ok((host, db))
    }

    /// The event backbone: subscribe here, and take the outbox signal.
    pub fn messaging(&mut self) -> &mut Messaging {
        &mut self.messaging
    }

    /// Adds the service's API (`add` puts it on the router) and reports `S` SERVING.
    pub async fn serve_api<S: NamedService>(
        mut self,
        add: impl FnOnce(MeshRouter) -> MeshRouter,
    ) -> Self {
        self.shell.health.set_serving::<S>().await;
        let GrpcShell { health, router } = self.shell;
        self.shell = GrpcShell {
            health,
            router: add(router),
        };
        self
    }

    /// Binds the internal listener on `addr` (reflection advertising `apis`), serving what
    /// `add` puts on it. Its callers are verified like the public listener's.
    pub async fn serve_internal_api(
        mut self,
        addr: SocketAddr,
        apis: &[&str],
        add: impl FnOnce(MeshRouter) -> MeshRouter,
    ) -> Result<Self, StartupError> {
        let listener = crate::startup::bind(addr).await?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?;
        let GrpcShell { health, router } = GrpcShell::new(apis, self.authenticator.clone())?;
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        self.internal = Some(InternalListener {
            shell: GrpcShell {
                health,
                router: add(router),
            },
            listener,
            local_addr,
        });
        Ok(self)
    }

    /// The address of the internal listener, if there is one.
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal.as_ref().map(|internal| internal.local_addr)
    }

    /// Runs `task` beside the server from [`ServiceHost::run`] until shutdown.
    pub fn spawn_on_run<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.background
            .push(Box::new(move |shutdown| Box::pin(task(shutdown))));
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` fires: health goes NOT_SERVING, calls in flight finish, then
    /// the relay, consumers and background tasks stop (within a bounded time).
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        tracing::info!(service = self.name, addr = %self.local_addr, "serving gRPC");
        let mut tasks = self.messaging.spawn(&shutdown);
        for task in self.background {
            tasks.spawn(task(shutdown.clone()));
        }
        tasks.spawn(report_pool_usage(self.db, shutdown.clone()));
        let internal = async {
            match self.internal {
                Some(internal) => {
                    tracing::info!(service = self.name, addr = %internal.local_addr, "serving internal gRPC");
                    internal
                        .shell
                        .serve(internal.listener, shutdown.clone())
                        .await
                }
                None => Ok(()),
            }
        };
        let (served, served_internal) =
            tokio::join!(self.shell.serve(self.listener, shutdown.clone()), internal);
        drain(tasks, DRAIN_LIMIT).await;
        served?;
        served_internal?;
        Ok(())
    }
}

/// Samples the database pool into the `db_pool_connections` gauges every second.
async fn report_pool_usage(db: Db, shutdown: Shutdown) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.requested() => return,
        }
        let (in_use, idle) = db.pool_usage();
        metrics::gauge!(catalog::DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
        metrics::gauge!(catalog::DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
    }
}

/// Forgets idempotency keys past their lifetime, hourly (and once at start).
async fn expire_request_keys(db: Db, shutdown: Shutdown) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    loop {
        match db
            .run(|conn| crate::request_log::purge(conn).map_err(crate::DbError::from))
            .await
        {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "expired idempotency keys"),
            Err(err) => tracing::warn!(%err, "expiring idempotency keys failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.requested() => return,
        }
    }
}
