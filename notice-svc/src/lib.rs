//! notice-svc: a notification for every reservation and payment status change.
//!
//! Events are turned into notifications (templates in English or Korean) and recorded in one
//! transaction with the event's inbox row; a separate [`dispatcher`] delivers them through the
//! configured [`sink`] with retries, so a failing sink never blocks the event stream.

pub mod dispatcher;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod sink;
pub mod store;
pub mod templates;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::{env_millis, env_or, optional_env};
use mesh_core::db::DbTarget;
use mesh_core::events::EVENTS_PREFIX;
use mesh_core::grpc_server::GrpcShell;
use mesh_core::messaging::{Messaging, MessagingConfig, drain};
use mesh_core::{ConfigError, Db, Shutdown, StartupError};
use reserve_proto::notice::v1::notice_service_server::{NoticeServiceServer, SERVICE_NAME};
use tokio::sync::Notify;

use crate::dispatcher::Dispatcher;
use crate::events::NoticeRecorder;
use crate::grpc::NoticeApi;
use crate::sink::{Sink, Webhook};
use crate::templates::Lang;

/// Everything notice-svc reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// gRPC listen address (`GRPC_ADDR`, default `0.0.0.0:8085`).
    pub grpc_addr: SocketAddr,
    /// Database (`DATABASE_URL`, else SQLite under `DATA_DIR`).
    pub db: DbTarget,
    /// PostgreSQL pool size (`DB_POOL_SIZE`, default 16).
    pub db_pool_size: u32,
    /// The event backbone (`NATS_URL`, `CONSUMER_*`).
    pub messaging: MessagingConfig,
    /// Language of the texts (`NOTICE_LANG`: `en`, default, or `ko`).
    pub lang: Lang,
    /// Where notifications go (`NOTICE_WEBHOOK_URL` set → webhook, else the log).
    pub sink: Sink,
    /// Attempts per notification before it is marked FAILED (`NOTICE_MAX_ATTEMPTS`, 8).
    pub max_attempts: i32,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, StartupError> {
        let sink = match optional_env("NOTICE_WEBHOOK_URL") {
            None => Sink::Log,
            Some(url) => {
                let timeout = env_millis("NOTICE_WEBHOOK_TIMEOUT_MS", Duration::from_millis(2000))?;
                Sink::Webhook(
                    Webhook::new(url.clone(), timeout)
                        .map_err(|reason| ConfigError::new("NOTICE_WEBHOOK_URL", &url, reason))?,
                )
            }
        };
        Ok(Self {
            grpc_addr: env_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 8085)))?,
            db: DbTarget::from_env("notice")?,
            db_pool_size: env_or("DB_POOL_SIZE", 16)?,
            messaging: MessagingConfig::from_env()?,
            lang: env_or("NOTICE_LANG", Lang::En)?,
            sink,
            max_attempts: env_or("NOTICE_MAX_ATTEMPTS", 8)?,
        })
    }
}

/// A notice-svc ready to serve.
pub struct App {
    shell: GrpcShell,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    messaging: Messaging,
    dispatcher: Dispatcher,
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
        let wake = Arc::new(Notify::new());
        let recorder = Arc::new(NoticeRecorder::new(config.lang, wake.clone()));
        let mut messaging = Messaging::connect(&config.messaging, "notice-svc", db.clone()).await?;
        for aggregate in ["reservation", "payment"] {
            messaging.subscribe(
                &format!("notice-svc-{aggregate}s"),
                format!("{EVENTS_PREFIX}.{aggregate}.>"),
                recorder.clone(),
            );
        }
        let mut shell = GrpcShell::new(&[SERVICE_NAME])?;
        shell
            .health
            .set_serving::<NoticeServiceServer<NoticeApi>>()
            .await;
        shell.router = shell
            .router
            .add_service(NoticeServiceServer::new(NoticeApi::new(db.clone())));
        tracing::info!(sink = ?config.sink, lang = ?config.lang, "notice sink configured");
        Ok(Self {
            shell,
            listener,
            local_addr,
            messaging,
            dispatcher: Dispatcher::new(db, config.sink, wake, config.max_attempts),
        })
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves (records and dispatches notifications) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        tracing::info!(addr = %self.local_addr, "notice-svc serving gRPC");
        let mut background = self.messaging.spawn(&shutdown);
        background.spawn(self.dispatcher.run(shutdown.clone()));
        let served = self.shell.serve(self.listener, shutdown).await;
        drain(background, Duration::from_secs(10)).await;
        served?;
        Ok(())
    }
}
