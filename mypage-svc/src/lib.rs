//! mypage-svc: the "my page" read model (CQRS) of each buyer's reservations and payments.
//!
//! Built only from events (no calls to other services), idempotent and order-safe by the
//! aggregates' versions, served by gRPC with a live `WatchMyPage` stream, and disposable: see
//! [`rebuild`]. Any number of replicas: they share the event consumers and the database, and
//! tell each other's watchers of their changes ([`fanout`]).

pub mod domain;
pub mod events;
pub mod fanout;
pub mod grpc;
pub mod rebuild;
pub mod store;
pub mod watchers;

use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::events::EVENTS_PREFIX;
use mesh_core::service::{ServiceConfig, ServiceHost};
use mesh_core::{Shutdown, StartupError};
use reserve_proto::mypage::v1::my_page_service_server::{MyPageServiceServer, SERVICE_NAME};
use tokio::sync::broadcast;

use crate::events::MyPageProjection;
use crate::fanout::ChangeFeed;
use crate::grpc::MyPageApi;

/// Change signals buffered for watchers before a slow one is told it lagged.
const CHANGE_BUFFER: usize = 1024;

/// Everything mypage-svc reads from its environment: what every service reads (`GRPC_ADDR`
/// default `0.0.0.0:8084`, `DATABASE_URL`/`DATA_DIR`, `DB_POOL_SIZE`, `NATS_URL`,
/// `CONSUMER_*`) and the watcher cap.
#[derive(Clone, Debug)]
pub struct Config {
    /// The common settings.
    pub service: ServiceConfig,
    /// Live `WatchMyPage` streams allowed at once (`MYPAGE_MAX_WATCHERS`, default 1000).
    pub max_watchers: usize,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, StartupError> {
        Ok(Self {
            service: ServiceConfig::from_env("mypage", 8084)?,
            max_watchers: mesh_core::config::env_or(
                "MYPAGE_MAX_WATCHERS",
                watchers::DEFAULT_MAX_WATCHERS,
            )?
            .max(1),
        })
    }
}

/// A mypage-svc ready to serve.
pub struct App {
    host: ServiceHost,
}

impl App {
    /// Connects and migrates the database, subscribes to the events and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let (mut host, db) = ServiceHost::start(
            "mypage-svc",
            &config.service,
            store::MIGRATIONS,
            &[SERVICE_NAME],
        )
        .await?;
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let feed = ChangeFeed::new(changes.clone(), host.messaging().client());
        let projection = Arc::new(MyPageProjection::new(feed.clone()));
        host.spawn_on_run(|shutdown| feed.listen(shutdown));
        for aggregate in ["reservation", "payment"] {
            host.messaging().subscribe(
                &format!("mypage-svc-{aggregate}s"),
                format!("{EVENTS_PREFIX}.{aggregate}.>"),
                projection.clone(),
            );
        }
        let watchers = watchers::Watchers::new(config.max_watchers);
        let api = MyPageServiceServer::new(MyPageApi::new(db, changes, watchers));
        let host = host
            .serve_api::<MyPageServiceServer<MyPageApi>>(|router| router.add_service(api))
            .await;
        Ok(Self { host })
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.host.local_addr()
    }

    /// Serves (and projects events) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        self.host.run(shutdown).await
    }
}
