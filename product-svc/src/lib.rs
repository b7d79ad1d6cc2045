//! product-svc: the product catalogue of Reserve Mesh.
//!
//! Sellers register products; reservation-svc locks one for a reservation with a synchronous,
//! idempotent `ReserveProduct` call (AVAILABLE → PENDING) and frees it with `ReleaseProduct`.
//! The lock and the admin service are served on a second, internal listener
//! (`INTERNAL_GRPC_ADDR`), never on the public one the gateway routes to.
//! [`App::build`] binds the listener before [`App::run`], so tests can start the real service
//! on port 0 and read back the address it got.

pub mod admin;
pub mod domain;
pub mod events;
pub mod faults;
pub mod grpc;
pub mod lock;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::events::subject_of;
use mesh_core::service::{ServiceConfig, ServiceHost};
use mesh_core::{Shutdown, StartupError};
use reserve_proto::events::v1::{PaymentCompleted, ReservationCancelled};
use reserve_proto::product::v1::product_admin_service_server::{
    ProductAdminServiceServer, SERVICE_NAME as ADMIN_SERVICE_NAME,
};
use reserve_proto::product::v1::product_lock_service_server::{
    ProductLockServiceServer, SERVICE_NAME as LOCK_SERVICE_NAME,
};
use reserve_proto::product::v1::product_service_server::{ProductServiceServer, SERVICE_NAME};

use crate::admin::ProductAdmin;
use crate::faults::{FaultSwitch, ReserveFaults};
use crate::grpc::ProductApi;
use crate::lock::ProductLockApi;

/// Everything product-svc reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// What every service reads (`GRPC_ADDR` default `0.0.0.0:8081`, `DATABASE_URL`/`DATA_DIR`,
    /// `DB_POOL_SIZE`, `NATS_URL`, `CONSUMER_*`).
    pub service: ServiceConfig,
    /// The internal listener for the lock and the admin service (`INTERNAL_GRPC_ADDR`,
    /// default `0.0.0.0:7081`).
    pub internal_addr: SocketAddr,
    /// Faults injected into ReserveProduct from the start (`FAULT_RESERVE_*`; off by default).
    pub faults: ReserveFaults,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, StartupError> {
        Ok(Self {
            service: ServiceConfig::from_env("product", 8081)?,
            internal_addr: mesh_core::config::env_or(
                "INTERNAL_GRPC_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 7081)),
            )?,
            faults: ReserveFaults::from_env()?,
        })
    }
}

/// A product-svc ready to serve: database migrated, listener bound.
pub struct App {
    host: ServiceHost,
}

impl App {
    /// Connects and migrates the database, subscribes to the events it applies and binds the
    /// listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let (mut host, db) = ServiceHost::start(
            "product-svc",
            &config.service,
            store::MIGRATIONS,
            &[SERVICE_NAME],
        )
        .await?;
        host.messaging().subscribe(
            "product-svc-reservation-cancelled",
            subject_of::<ReservationCancelled>(),
            Arc::new(events::FreeOnCancellation),
        );
        host.messaging().subscribe(
            "product-svc-payment-completed",
            subject_of::<PaymentCompleted>(),
            Arc::new(events::SellOnPayment),
        );
        let purge_db = db.clone();
        host.spawn_on_run(|shutdown| purge_old_fences(purge_db, shutdown));
        let faults = FaultSwitch::new(config.faults);
        let api = ProductServiceServer::new(ProductApi::new(db.clone()));
        let lock = ProductLockServiceServer::new(ProductLockApi::new(db, faults.clone()));
        let admin = ProductAdminServiceServer::new(ProductAdmin::new(faults));
        let host = host
            .serve_api::<ProductServiceServer<ProductApi>>(|router| router.add_service(api))
            .await
            .serve_internal_api(
                config.internal_addr,
                &[LOCK_SERVICE_NAME, ADMIN_SERVICE_NAME],
                |router| router.add_service(lock).add_service(admin),
            )
            .await?;
        Ok(Self { host })
    }

    /// The address the public gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.host.local_addr()
    }

    /// The address the internal gRPC server (lock, admin) listens on.
    pub fn internal_addr(&self) -> SocketAddr {
        self.host.internal_addr().unwrap_or(self.host.local_addr())
    }

    /// Serves (and consumes events) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        self.host.run(shutdown).await
    }
}

/// Forgets lock fences untouched for a day, hourly (and once at start): no lock arrives that
/// late, and the table would otherwise grow by a row per reservation forever.
async fn purge_old_fences(db: mesh_core::Db, shutdown: Shutdown) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    const KEEP_MS: i64 = 24 * 3600 * 1000;
    loop {
        let before = mesh_core::clock::now_ms().saturating_sub(KEEP_MS);
        match db.run(move |conn| store::purge_fences(conn, before)).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "purged old lock fences"),
            Err(err) => tracing::warn!(%err, "purging old lock fences failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.requested() => return,
        }
    }
}
