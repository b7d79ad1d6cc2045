//! mypage-svc: the "my page" read model (CQRS) of each buyer's reservations and payments.
//!
//! Built only from events (no calls to other services), idempotent and order-safe by the
//! aggregates' versions, served by gRPC with a live `WatchMyPage` stream, and disposable: see
//! [`rebuild`].

pub mod domain;
pub mod events;
pub mod grpc;
pub mod rebuild;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::env_or;
use mesh_core::db::DbTarget;
use mesh_core::events::EVENTS_PREFIX;
use mesh_core::grpc_server::GrpcShell;
use mesh_core::messaging::{Messaging, MessagingConfig, drain};
use mesh_core::{Db, Shutdown, StartupError};
use reserve_proto::mypage::v1::my_page_service_server::{MyPageServiceServer, SERVICE_NAME};
use tokio::sync::broadcast;

use crate::events::MyPageProjection;
use crate::grpc::MyPageApi;

/// Change signals buffered for watchers before a slow one is told it lagged.
const CHANGE_BUFFER: usize = 1024;

/// Everything mypage-svc reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// gRPC listen address (`GRPC_ADDR`, default `0.0.0.0:8084`).
    pub grpc_addr: SocketAddr,
    /// Database (`DATABASE_URL`, else SQLite under `DATA_DIR`).
    pub db: DbTarget,
    /// PostgreSQL pool size (`DB_POOL_SIZE`, default 16).
    pub db_pool_size: u32,
    /// The event backbone (`NATS_URL`, `CONSUMER_*`).
    pub messaging: MessagingConfig,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, StartupError> {
        Ok(Self {
            grpc_addr: env_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 8084)))?,
            db: DbTarget::from_env("mypage")?,
            db_pool_size: env_or("DB_POOL_SIZE", 16)?,
            messaging: MessagingConfig::from_env()?,
        })
    }
}

/// A mypage-svc ready to serve.
pub struct App {
    shell: GrpcShell,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    messaging: Messaging,
}

impl App {
    /// Connects and migrates the database, subscribes to the events and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let db = Db::connect(&config.db, store::MIGRATIONS, config.db_pool_size).await?;
        let listener = mesh_core::startup::bind(config.grpc_addr).await?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let projection = Arc::new(MyPageProjection::new(changes.clone()));
        let mut messaging = Messaging::connect(&config.messaging, "mypage-svc", db.clone()).await?;
        for aggregate in ["reservation", "payment"] {
            messaging.subscribe(
                &format!("mypage-svc-{aggregate}s"),
                format!("{EVENTS_PREFIX}.{aggregate}.>"),
                projection.clone(),
            );
        }
        let mut shell = GrpcShell::new(&[SERVICE_NAME])?;
        shell
            .health
            .set_serving::<MyPageServiceServer<MyPageApi>>()
            .await;
        let api = MyPageServiceServer::new(MyPageApi::new(db, changes));
        shell.router = shell.router.add_service(api);
        Ok(Self {
            shell,
            listener,
            local_addr,
            messaging,
        })
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves (and projects events) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        tracing::info!(addr = %self.local_addr, "mypage-svc serving gRPC");
        let background = self.messaging.spawn(&shutdown);
        let served = self.shell.serve(self.listener, shutdown).await;
        drain(background, Duration::from_secs(10)).await;
        served?;
        Ok(())
    }
}
