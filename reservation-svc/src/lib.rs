//! reservation-svc: buyers reserve products.
//!
//! Reserving locks the product with a synchronous, deadline-bound gRPC call to product-svc
//! ([`product_lock`]) before the reservation becomes visible ([`placement`]); a background
//! [`reconciler`] releases locks whose reservation never came to be. [`App::build`] binds the
//! listener before [`App::run`], so tests start the real service on port 0.

pub mod cancellation;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod placement;
pub mod product_lock;
pub mod reconciler;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::{env_millis, env_or};
use mesh_core::db::DbTarget;
use mesh_core::events::subject_of;
use mesh_core::grpc_server::GrpcShell;
use mesh_core::messaging::{Messaging, MessagingConfig, drain};
use mesh_core::{ConfigError, Db, Shutdown, StartupError};
use reserve_proto::events::v1::PaymentCompleted;
use reserve_proto::reservation::v1::reservation_service_server::{
    ReservationServiceServer, SERVICE_NAME,
};

use crate::grpc::ReservationApi;
use crate::placement::Placement;
use crate::product_lock::{LockPolicy, ProductLock};
use crate::reconciler::{Reconciler, ReconcilerPolicy};

/// Everything reservation-svc reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// gRPC listen address (`GRPC_ADDR`, default `0.0.0.0:8082`).
    pub grpc_addr: SocketAddr,
    /// Database (`DATABASE_URL`, else SQLite under `DATA_DIR`).
    pub db: DbTarget,
    /// PostgreSQL pool size (`DB_POOL_SIZE`, default 16).
    pub db_pool_size: u32,
    /// product-svc's gRPC URL (`PRODUCT_SVC_URL`, default `http://127.0.0.1:8081`).
    pub product_svc_url: String,
    /// The product lock call's policy (`PRODUCT_LOCK_*`).
    pub lock: LockPolicy,
    /// The reconciler's policy (`RECONCILE_*`).
    pub reconciler: ReconcilerPolicy,
    /// The event backbone (`NATS_URL`, `CONSUMER_*`).
    pub messaging: MessagingConfig,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = LockPolicy::default();
        Ok(Self {
            grpc_addr: env_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 8082)))?,
            db: DbTarget::from_env("reservation")?,
            db_pool_size: env_or("DB_POOL_SIZE", 16)?,
            product_svc_url: env_or("PRODUCT_SVC_URL", "http://127.0.0.1:8081".to_owned())?,
            lock: LockPolicy {
                deadline: env_millis("PRODUCT_LOCK_DEADLINE_MS", defaults.deadline)?,
                max_in_flight: env_or("PRODUCT_LOCK_MAX_IN_FLIGHT", defaults.max_in_flight)?,
                retry_percent: env_or("PRODUCT_LOCK_RETRY_PERCENT", defaults.retry_percent)?,
                max_retries: env_or("PRODUCT_LOCK_MAX_RETRIES", defaults.max_retries)?,
                retry_backoff: env_millis("PRODUCT_LOCK_RETRY_BACKOFF_MS", defaults.retry_backoff)?,
            },
            reconciler: ReconcilerPolicy {
                interval: env_millis("RECONCILE_INTERVAL_MS", Duration::from_millis(1000))?,
                grace: env_millis("RECONCILE_GRACE_MS", Duration::from_millis(5000))?,
            },
            messaging: MessagingConfig::from_env()?,
        })
    }
}

/// A reservation-svc ready to serve: database migrated, listener bound.
pub struct App {
    shell: GrpcShell,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    reconciler: Reconciler,
    messaging: Messaging,
}

impl App {
    /// Connects and migrates the database, prepares the product lock client (lazily
    /// connected) and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let db = Db::connect(&config.db, store::MIGRATIONS, config.db_pool_size).await?;
        let lock =
            ProductLock::connect(&config.product_svc_url, config.lock.clone()).map_err(|err| {
                ConfigError::new("PRODUCT_SVC_URL", &config.product_svc_url, err.to_string())
            })?;
        let listener = mesh_core::startup::bind(config.grpc_addr).await?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
        let mut shell = GrpcShell::new(&[SERVICE_NAME])?;
        shell
            .health
            .set_serving::<ReservationServiceServer<ReservationApi>>()
            .await;
        let mut messaging =
            Messaging::connect(&config.messaging, "reservation-svc", db.clone()).await?;
        messaging.subscribe(
            "reservation-svc-payment-completed",
            subject_of::<PaymentCompleted>(),
            Arc::new(events::ConfirmOnPayment),
        );
        let placement = Placement::new(db.clone(), lock.clone(), messaging.signal());
        let api = ReservationApi::new(db.clone(), placement, messaging.signal());
        shell.router = shell.router.add_service(ReservationServiceServer::new(api));
        Ok(Self {
            shell,
            listener,
            local_addr,
            reconciler: Reconciler::new(db, lock, config.reconciler),
            messaging,
        })
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves (and reconciles, publishes, consumes) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        tracing::info!(addr = %self.local_addr, "reservation-svc serving gRPC");
        let mut background = self.messaging.spawn(&shutdown);
        background.spawn(self.reconciler.run(shutdown.clone()));
        let served = self.shell.serve(self.listener, shutdown).await;
        drain(background, Duration::from_secs(10)).await;
        served?;
        Ok(())
    }
}
