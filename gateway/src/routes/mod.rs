//! The REST surface: the original API's routes plus health probes. Handlers translate
//! JSON ⇄ gRPC and check the route's role ([`crate::auth`]); every other rule lives in the
//! services, which check the roles again.

mod health;
mod mypage;
mod notices;
mod payments;
mod products;
mod reservations;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};
use std::sync::Arc;

use http::Uri;
use mesh_core::auth::Authenticator;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

use mesh_core::telemetry::catalog;

use crate::api_error::ApiError;
use crate::body::BODY_LIMIT_BYTES;
use crate::observability::observe;
use crate::rate_limit::RateLimiter;
use crate::upstream::Upstreams;

/// What the routes share besides the upstream clients.
pub struct Guards {
    /// Verifies callers.
    pub authenticator: Arc<Authenticator>,
    /// Bounds reservations per buyer.
    pub reservation_limiter: Arc<RateLimiter>,
    /// Request/response calls in flight before 503.
    pub max_in_flight: usize,
    /// Live streams at once before 503.
    pub max_streams: usize,
}

/// Builds the router over `upstreams`. Request/response routes share a bound of
/// `max_in_flight` requests: past it, a request is answered 503 at once instead of queueing.
/// Live streams (long-lived by design) have their own bound, `max_streams`; health probes
/// have none.
pub fn router(upstreams: Upstreams, guards: Guards) -> Router {
    let Guards {
        authenticator,
        reservation_limiter,
        max_in_flight,
        max_streams,
    } = guards;
    // Exported from the start (at zero), so a dashboard shows 0 sheds, not "no data".
    metrics::counter!(catalog::HTTP_SHED).increment(0);
    let bounded = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            metrics::counter!(catalog::HTTP_SHED).increment(1);
            ApiError::overloaded()
        }))
        .load_shed()
        // Global: route_layer wraps every route separately, and a plain concurrency limit
        // would give each route its own budget.
        .layer(GlobalConcurrencyLimitLayer::new(max_in_flight));
    let unbounded = Router::new()
        .route("/mypage/stream", get(mypage::stream))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/actuator/health", get(health::ready));
    Router::new()
        .route("/product", post(products::register).get(products::list))
        .route("/products", get(products::list))
        .route("/product/{id}", get(products::get))
        .route(
            "/reservation",
            post(reservations::create).get(reservations::list),
        )
        .route("/reservations", get(reservations::list))
        .route("/reservation/{id}", get(reservations::get))
        .route("/reservationupdate", patch(reservations::update))
        .route("/paid", patch(payments::pay))
        .route("/payment", get(payments::list))
        .route("/payments", get(payments::list))
        .route("/payment/{id}", get(payments::get))
        .route("/mypage", get(mypage::list))
        .route("/myPages", get(mypage::list))
        .route("/notice", get(notices::list))
        .route("/notices", get(notices::list))
        .route_layer(bounded)
        .merge(unbounded)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::Extension(mypage::StreamSlots::new(max_streams)))
        .layer(axum::Extension(authenticator))
        .layer(axum::Extension(reservation_limiter))
        .layer(axum::middleware::from_fn(observe))
        .with_state(upstreams)
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
