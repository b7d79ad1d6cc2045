//! reservation-svc: buyers reserve products.
//!
//! Reserving locks the product with a synchronous, deadline-bound gRPC call to product-svc
//! ([`product_lock`]) before the reservation becomes visible ([`placement`]); a background
//! [`reconciler`] releases locks whose reservation never came to be. [`App::build`] binds the
//! listener before [`App::run`], so tests start the real service on port 0.

pub mod breaker;
pub mod cancellation;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod lock_metrics;
pub mod placement;
pub mod placement_batches;
pub mod product_lock;
pub mod reconciler;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::{env_millis, env_or};
use mesh_core::events::subject_of;
use mesh_core::service::{ServiceConfig, ServiceHost};
use mesh_core::{ConfigError, Shutdown, StartupError};
use reserve_proto::events::v1::PaymentCompleted;
use reserve_proto::reservation::v1::reservation_service_server::{
    ReservationServiceServer, SERVICE_NAME,
};

use crate::breaker::BreakerPolicy;
use crate::grpc::ReservationApi;
use crate::placement::Placement;
use crate::product_lock::{LockPolicy, ProductLock};
use crate::reconciler::{Reconciler, ReconcilerPolicy};

/// Everything reservation-svc reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// What every service reads (`GRPC_ADDR` default `0.0.0.0:8082`, `DATABASE_URL`/`DATA_DIR`,
    /// `DB_POOL_SIZE`, `NATS_URL`, `CONSUMER_*`).
    pub service: ServiceConfig,
    /// product-svc's internal gRPC URL, where the lock is served (`PRODUCT_INTERNAL_URL`,
    /// default `http://127.0.0.1:7081`): one host, resolved to every replica, or a
    /// comma-separated list.
    pub product_internal_url: String,
    /// How often product-svc's hosts are resolved again (`UPSTREAM_REFRESH_MS`, default 5 s).
    pub upstream_refresh: Duration,
    /// The product lock call's policy (`PRODUCT_LOCK_*`).
    pub lock: LockPolicy,
    /// The reconciler's policy (`RECONCILE_*`).
    pub reconciler: ReconcilerPolicy,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = LockPolicy::default();
        Ok(Self {
            service: ServiceConfig::from_env("reservation", 8082)?,
            product_internal_url: env_or(
                "PRODUCT_INTERNAL_URL",
                "http://127.0.0.1:7081".to_owned(),
            )?,
            upstream_refresh: env_millis(
                "UPSTREAM_REFRESH_MS",
                mesh_core::upstream::DEFAULT_REFRESH,
            )?,
            lock: LockPolicy {
                deadline: env_millis("PRODUCT_LOCK_DEADLINE_MS", defaults.deadline)?,
                max_in_flight: env_or("PRODUCT_LOCK_MAX_IN_FLIGHT", defaults.max_in_flight)?,
                retry_percent: env_or("PRODUCT_LOCK_RETRY_PERCENT", defaults.retry_percent)?,
                max_retries: env_or("PRODUCT_LOCK_MAX_RETRIES", defaults.max_retries)?,
                retry_backoff: env_millis("PRODUCT_LOCK_RETRY_BACKOFF_MS", defaults.retry_backoff)?,
                breaker: BreakerPolicy {
                    failure_threshold: env_or(
                        "PRODUCT_LOCK_BREAKER_FAILURES",
                        defaults.breaker.failure_threshold,
                    )?,
                    open_for: env_millis(
                        "PRODUCT_LOCK_BREAKER_OPEN_MS",
                        defaults.breaker.open_for,
                    )?,
                },
            },
            reconciler: ReconcilerPolicy {
                interval: env_millis("RECONCILE_INTERVAL_MS", Duration::from_millis(1000))?,
                grace: env_millis("RECONCILE_GRACE_MS", Duration::from_millis(5000))?,
            },
        })
    }
}

/// A reservation-svc ready to serve: database migrated, listener bound.
pub struct App {
    host: ServiceHost,
}

impl App {
    /// Connects and migrates the database, prepares the product lock client (lazily
    /// connected), subscribes to PaymentCompleted and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        lock_metrics::describe();
        let (mut host, db) = ServiceHost::start(
            "reservation-svc",
            &config.service,
            store::MIGRATIONS,
            &[SERVICE_NAME],
        )
        .await?;
        let lock = ProductLock::connect(
            &config.product_internal_url,
            config.lock.clone(),
            config.upstream_refresh,
        )?;
        host.messaging().subscribe(
            "reservation-svc-payment-completed",
            subject_of::<PaymentCompleted>(),
            Arc::new(events::ConfirmOnPayment),
        );
        let outbox = host.messaging().signal();
        let reconciler = Reconciler::new(db.clone(), lock.clone(), config.reconciler);
        host.spawn_on_run(|shutdown| reconciler.run(shutdown));
        let placement = Placement::new(db.clone(), lock, outbox.clone());
        let api = ReservationServiceServer::new(ReservationApi::new(db, placement, outbox));
        let host = host
            .serve_api::<ReservationServiceServer<ReservationApi>>(|router| router.add_service(api))
            .await;
        Ok(Self { host })
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.host.local_addr()
    }

    /// Serves (and reconciles, publishes, consumes) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        self.host.run(shutdown).await
    }
}
