//! payment-svc: one payment per reservation, created from the ReservationPlaced event, paid by
//! the buyer, voided or refunded when the reservation is cancelled.
//!
//! It talks to no other service synchronously: payments are taken while reservation-svc and
//! product-svc are down, and their effects (SOLD_OUT, CONFIRMED) follow through events.

pub mod domain;
pub mod events;
pub mod grpc;
pub mod pay;
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
use reserve_proto::payment::v1::payment_service_server::{PaymentServiceServer, SERVICE_NAME};

use crate::grpc::PaymentApi;

/// Everything payment-svc reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// gRPC listen address (`GRPC_ADDR`, default `0.0.0.0:8083`).
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
            grpc_addr: env_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 8083)))?,
            db: DbTarget::from_env("payment")?,
            db_pool_size: env_or("DB_POOL_SIZE", 16)?,
            messaging: MessagingConfig::from_env()?,
        })
    }
}

/// A payment-svc ready to serve: database migrated, listener bound.
pub struct App {
    shell: GrpcShell,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    messaging: Messaging,
}

impl App {
    /// Connects and migrates the database, prepares messaging and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let db = Db::connect(&config.db, store::MIGRATIONS, config.db_pool_size).await?;
        let listener = mesh_core::startup::bind(config.grpc_addr).await?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
        let mut messaging =
            Messaging::connect(&config.messaging, "payment-svc", db.clone()).await?;
        // One consumer for every reservation event keeps placement and cancellation of a
        // reservation in publishing order.
        messaging.subscribe(
            "payment-svc-reservations",
            format!("{EVENTS_PREFIX}.reservation.>"),
            Arc::new(events::ReservationEvents),
        );
        let mut shell = GrpcShell::new(&[SERVICE_NAME])?;
        shell
            .health
            .set_serving::<PaymentServiceServer<PaymentApi>>()
            .await;
        let api = PaymentApi::new(db, messaging.signal());
        shell.router = shell.router.add_service(PaymentServiceServer::new(api));
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

    /// Serves (and consumes, publishes) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        tracing::info!(addr = %self.local_addr, "payment-svc serving gRPC");
        let background = self.messaging.spawn(&shutdown);
        let served = self.shell.serve(self.listener, shutdown).await;
        drain(background, Duration::from_secs(10)).await;
        served?;
        Ok(())
    }
}
