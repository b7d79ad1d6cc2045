//! notice-svc: a notification for every reservation and payment status change.
//!
//! Events are turned into notifications (templates in English or Korean) and recorded in one
//! transaction with the event's inbox row; a separate [`dispatcher`] delivers them through the
//! configured [`sink`] with retries, so a failing sink never blocks the event stream.

pub mod dispatcher;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod signature;
pub mod sink;
pub mod store;
pub mod templates;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::{env_millis, env_or, optional_env};
use mesh_core::events::EVENTS_PREFIX;
use mesh_core::service::{ServiceConfig, ServiceHost};
use mesh_core::{ConfigError, Shutdown, StartupError};
use reserve_proto::notice::v1::notice_service_server::{NoticeServiceServer, SERVICE_NAME};
use tokio::sync::Notify;

use crate::dispatcher::Dispatcher;
use crate::events::NoticeRecorder;
use crate::grpc::NoticeApi;
use crate::signature::WebhookSecret;
use crate::sink::{Sink, Webhook};
use crate::templates::Lang;

/// Everything notice-svc reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// What every service reads (`GRPC_ADDR` default `0.0.0.0:8085`, `DATABASE_URL`/`DATA_DIR`,
    /// `DB_POOL_SIZE`, `NATS_URL`, `CONSUMER_*`).
    pub service: ServiceConfig,
    /// Language of the texts (`NOTICE_LANG`: `en`, default, or `ko`).
    pub lang: Lang,
    /// Where notifications go (`NOTICE_WEBHOOK_URL` set → webhook signed with
    /// `NOTICE_WEBHOOK_SECRET`, else the log).
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
                // Both are credentials: errors name the variable, never the value.
                let secret = optional_env("NOTICE_WEBHOOK_SECRET")
                    .ok_or_else(|| {
                        ConfigError::new(
                            "NOTICE_WEBHOOK_SECRET",
                            "(unset)",
                            "required with NOTICE_WEBHOOK_URL: every delivery is signed with it",
                        )
                    })
                    .and_then(|raw| {
                        WebhookSecret::parse(&raw).map_err(|reason| {
                            ConfigError::new("NOTICE_WEBHOOK_SECRET", "(hidden)", reason)
                        })
                    })?;
                Sink::Webhook(
                    Webhook::new(url, secret, timeout).map_err(|reason| {
                        ConfigError::new("NOTICE_WEBHOOK_URL", "(hidden)", reason)
                    })?,
                )
            }
        };
        Ok(Self {
            service: ServiceConfig::from_env("notice", 8085)?,
            lang: env_or("NOTICE_LANG", Lang::En)?,
            sink,
            max_attempts: env_or("NOTICE_MAX_ATTEMPTS", 8)?,
        })
    }
}

/// A notice-svc ready to serve.
pub struct App {
    host: ServiceHost,
}

impl App {
    /// Connects and migrates the database, subscribes to the events, prepares the dispatcher
    /// and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let (mut host, db) = ServiceHost::start(
            "notice-svc",
            &config.service,
            store::MIGRATIONS,
            &[SERVICE_NAME],
        )
        .await?;
        let wake = Arc::new(Notify::new());
        let recorder = Arc::new(NoticeRecorder::new(config.lang, wake.clone()));
        for aggregate in ["reservation", "payment"] {
            host.messaging().subscribe(
                &format!("notice-svc-{aggregate}s"),
                format!("{EVENTS_PREFIX}.{aggregate}.>"),
                recorder.clone(),
            );
        }
        tracing::info!(sink = ?config.sink, lang = ?config.lang, "notice sink configured");
        let dispatcher = Dispatcher::new(db.clone(), config.sink, wake, config.max_attempts);
        host.spawn_on_run(|shutdown| dispatcher.run(shutdown));
        let api = NoticeServiceServer::new(NoticeApi::new(db));
        let host = host
            .serve_api::<NoticeServiceServer<NoticeApi>>(|router| router.add_service(api))
            .await;
        Ok(Self { host })
    }

    /// The address the gRPC server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.host.local_addr()
    }

    /// Serves (records and dispatches notifications) until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        self.host.run(shutdown).await
    }
}
