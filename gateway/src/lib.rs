//! gateway: the REST face of Reserve Mesh.
//!
//! Serves the original API's JSON routes (DESIGN.md section 4) and translates each into one
//! gRPC call; it holds no domain logic. [`App::build`] binds before [`App::run`], so tests can
//! start it on port 0.

pub mod api_error;
pub mod auth;
pub mod body;
pub mod idempotency;
pub mod observability;
pub mod openapi;
pub mod paging;
pub mod rate_limit;
pub mod routes;
pub mod status_names;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use mesh_core::auth::{AuthConfig, AuthMode, Authenticator};
use mesh_core::config::{env_millis, env_or};
use mesh_core::{ConfigError, Shutdown, StartupError};

use crate::rate_limit::RateLimiter;
use crate::routes::Guards;
use crate::upstream::{UpstreamConfig, Upstreams};

/// Everything the gateway reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// HTTP listen address (`HTTP_ADDR`, default `0.0.0.0:8080`).
    pub http_addr: SocketAddr,
    /// Request/response calls in flight before new ones get 503 (`GATEWAY_MAX_IN_FLIGHT`,
    /// default 1024).
    pub max_in_flight: usize,
    /// Live `/mypage/stream` streams at once before new ones get 503
    /// (`GATEWAY_MAX_STREAMS`, default 256). Streams are long-lived, so they have a bound of
    /// their own rather than a share of `max_in_flight`.
    pub max_streams: usize,
    /// The services behind it (`PRODUCT_SVC_URL`, `RESERVATION_SVC_URL`, `PAYMENT_SVC_URL`,
    /// `MYPAGE_SVC_URL`, `NOTICE_SVC_URL`: each one URL or a comma-separated list;
    /// `UPSTREAM_TIMEOUT_MS`, `UPSTREAM_REFRESH_MS`, `RESERVE_TIMEOUT_MS`).
    pub upstream: UpstreamConfig,
    /// How callers are verified (`AUTH_*`).
    pub auth: AuthConfig,
    /// Reservations a buyer may place per second, sustained (`RESERVE_RATE_PER_SEC`, default
    /// 1; 0 turns the limit off).
    pub reserve_rate_per_sec: f64,
    /// Reservations a buyer may place at once (`RESERVE_RATE_BURST`, default 10).
    pub reserve_rate_burst: u32,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            http_addr: env_or("HTTP_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)))?,
            max_in_flight: env_or("GATEWAY_MAX_IN_FLIGHT", 1024)?,
            max_streams: env_or("GATEWAY_MAX_STREAMS", 256)?,
            upstream: UpstreamConfig {
                product_url: env_or("PRODUCT_SVC_URL", "http://127.0.0.1:8081".to_owned())?,
                reservation_url: env_or("RESERVATION_SVC_URL", "http://127.0.0.1:8082".to_owned())?,
                payment_url: env_or("PAYMENT_SVC_URL", "http://127.0.0.1:8083".to_owned())?,
                mypage_url: env_or("MYPAGE_SVC_URL", "http://127.0.0.1:8084".to_owned())?,
                notice_url: env_or("NOTICE_SVC_URL", "http://127.0.0.1:8085".to_owned())?,
                timeout: env_millis("UPSTREAM_TIMEOUT_MS", Duration::from_millis(5000))?,
                refresh: env_millis("UPSTREAM_REFRESH_MS", mesh_core::upstream::DEFAULT_REFRESH)?,
                reserve_timeout: env_millis("RESERVE_TIMEOUT_MS", Duration::from_millis(1100))?,
            },
            auth: AuthConfig::from_env()?,
            reserve_rate_per_sec: env_or("RESERVE_RATE_PER_SEC", 1.0)?,
            reserve_rate_burst: env_or("RESERVE_RATE_BURST", 10)?,
        })
    }
}

/// A gateway ready to serve: listener bound, clients prepared.
pub struct App {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    dev_mode: bool,
}

impl App {
    /// Prepares the upstream clients and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let upstreams = Upstreams::connect(&config.upstream)?;
        let listener = mesh_core::startup::bind(config.http_addr).await?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.http_addr,
            source,
        })?;
        let authenticator = Arc::new(Authenticator::new(&config.auth));
        authenticator.load_keys().await;
        let guards = Guards {
            authenticator,
            reservation_limiter: Arc::new(RateLimiter::new(
                config.reserve_rate_per_sec,
                config.reserve_rate_burst,
            )),
            max_in_flight: config.max_in_flight.max(1),
            max_streams: config.max_streams.max(1),
        };
        Ok(Self {
            listener,
            local_addr,
            router: routes::router(upstreams, guards),
            dev_mode: config.auth.mode == AuthMode::Dev,
        })
    }

    /// The address the HTTP server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` fires, then lets requests in flight finish.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), StartupError> {
        tracing::info!(addr = %self.local_addr, "gateway serving HTTP");
        if self.dev_mode {
            tokio::spawn(mesh_core::auth::remind_of_dev_mode(shutdown.clone()));
        }
        // Responses go out as soon as they are written: without TCP_NODELAY a body written
        // after its headers waits for the client's delayed ACK (40 ms on Linux).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(%err, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, self.router)
            .with_graceful_shutdown(async move { shutdown.requested().await })
            .await
            .map_err(StartupError::HttpServe)
    }
}
