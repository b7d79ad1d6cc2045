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

use mesh_core::events::EVENTS_PREFIX;
use mesh_core::service::{ServiceConfig, ServiceHost};
use mesh_core::{Shutdown, StartupError};
use reserve_proto::payment::v1::payment_service_server::{PaymentServiceServer, SERVICE_NAME};

use crate::grpc::PaymentApi;

/// Everything payment-svc reads from its environment: only what every service reads
/// (`GRPC_ADDR` default `0.0.0.0:8083`, `DATABASE_URL`/`DATA_DIR`, `DB_POOL_SIZE`, `NATS_URL`,
/// `CONSUMER_*`).
#[derive(Clone, Debug)]
pub struct Config {
    /// The common settings.
    pub service: ServiceConfig,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, StartupError> {
        Ok(Self {
            service: ServiceConfig::from_env("payment", 8083)?,
        })
    }
}

/// A payment-svc ready to serve: database migrated, listener bound.
pub struct App {
    host: ServiceHost,
}

impl App {
    /// Connects and migrates the database, subscribes to reservation events and binds the
    /// listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let (mut host, db) = ServiceHost::start(
            "payment-svc",
            &config.service,
            store::MIGRATIONS,
            &[SERVICE_NAME],
        )
        .await?;
        // One consumer for every reservation event keeps placement and cancellation of a
        // reservation in publishing order.
        host.messaging().subscribe(
            "payment-svc-reservations",
            format!("{EVENTS_PREFIX}.reservation.>"),
            Arc::new(events::ReservationEvents),
        );
        let api = PaymentServiceServer::new(PaymentApi::new(db, host.messaging().signal()));
        let host = host
            .serve_api::<PaymentServiceServer<PaymentApi>>(|router| router.add_service(api))
            .await;
        Ok(Self { host })
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.host.local_addr()
    }

    /// Serves (and consumes, publishes) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        self.host.run(shutdown).await
    }
}
