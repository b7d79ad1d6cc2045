//! product-svc: the product catalogue of Reserve Mesh.
//!
//! Sellers register products; reservation-svc locks one for a reservation with a synchronous,
//! idempotent `ReserveProduct` call (AVAILABLE → PENDING) and frees it with `ReleaseProduct`.
//! [`App::build`] binds the listener before [`App::run`], so tests can start the real service
//! on port 0 and read back the address it got.

pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::env_or;
use mesh_core::db::DbTarget;
use mesh_core::events::subject_of;
use mesh_core::grpc_server::GrpcShell;
use mesh_core::messaging::{Messaging, MessagingConfig, drain};
use mesh_core::{Db, Shutdown, StartupError};
use reserve_proto::events::v1::{PaymentCompleted, ReservationCancelled};
use reserve_proto::product::v1::product_service_server::{ProductServiceServer, SERVICE_NAME};

use crate::grpc::ProductApi;

/// Everything product-svc reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// gRPC listen address (`GRPC_ADDR`, default `0.0.0.0:8081`).
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
            grpc_addr: env_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 8081)))?,
            db: DbTarget::from_env("product")?,
            db_pool_size: env_or("DB_POOL_SIZE", 16)?,
            messaging: MessagingConfig::from_env()?,
        })
    }
}

/// A product-svc ready to serve: database migrated, listener bound.
pub struct App {
    shell: GrpcShell,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    messaging: Messaging,
}

impl App {
    /// Connects and migrates the database and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let db = Db::connect(&config.db, store::MIGRATIONS, config.db_pool_size).await?;
        let listener = mesh_core::startup::bind(config.grpc_addr).await?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
        let mut shell = GrpcShell::new(&[SERVICE_NAME])?;
        shell
            .health
            .set_serving::<ProductServiceServer<ProductApi>>()
            .await;
        let mut messaging =
            Messaging::connect(&config.messaging, "product-svc", db.clone()).await?;
        messaging.subscribe(
            "product-svc-reservation-cancelled",
            subject_of::<ReservationCancelled>(),
            Arc::new(events::FreeOnCancellation),
        );
        messaging.subscribe(
            "product-svc-payment-completed",
            subject_of::<PaymentCompleted>(),
            Arc::new(events::SellOnPayment),
        );
        let api = ProductServiceServer::new(ProductApi::new(db));
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

    /// Serves (and consumes events) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        tracing::info!(addr = %self.local_addr, "product-svc serving gRPC");
        let background = self.messaging.spawn(&shutdown);
        let served = self.shell.serve(self.listener, shutdown).await;
        drain(background, Duration::from_secs(10)).await;
        served?;
        Ok(())
    }
}
