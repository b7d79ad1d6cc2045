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
use std::sync::Arc;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use http::Uri;
use mesh_core::auth::Authenticator;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

use mesh_core::telemetry::catalog;

use crate::api_error::ApiError;
use crate::body::BODY_LIMIT_BYTES;
use crate::observability::observe;
use crate::openapi::ApiDoc;
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
    build(upstreams, guards).0
}

/// The router and the OpenAPI document describing it, made together.
pub fn build(upstreams: Upstreams, guards: Guards) -> (Router, utoipa::openapi::OpenApi) {
    let Guards {
        authenticator,
        reservation_limiter,
        max_in_flight,
        max_streams,
    } = guards;
    // Exported from the start (at zero), so a dashboard shows 0 sheds, not "no data".
    metrics::counter!(catalog::HTTP_SHED).increment(0);
    metrics::gauge!(catalog::HTTP_IN_FLIGHT).set(0.0);
    let bounded = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            metrics::counter!(catalog::HTTP_SHED).increment(1);
            ApiError::overloaded()
        }))
        .load_shed()
        // Global: route_layer wraps every route separately, and a plain concurrency limit
        // would give each route its own budget.
        .layer(GlobalConcurrencyLimitLayer::new(max_in_flight))
        .layer(axum::middleware::from_fn(count_in_flight));
    // Every route is registered through `routes!`, from its handler's OpenAPI annotation: the
    // document served at /openapi.json describes exactly the routes that exist.
    let (api_routes, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(products::register, products::list_at_product))
        .routes(routes!(products::list))
        .routes(routes!(products::get))
        .routes(routes!(
            reservations::create,
            reservations::list_at_reservation
        ))
        .routes(routes!(reservations::list))
        .routes(routes!(reservations::get))
        .routes(routes!(reservations::update))
        .routes(routes!(payments::pay))
        .routes(routes!(payments::list_at_payment))
        .routes(routes!(payments::list))
        .routes(routes!(payments::get))
        .routes(routes!(mypage::list))
        .routes(routes!(mypage::list_at_my_pages))
        .routes(routes!(notices::list))
        .routes(routes!(notices::list_at_notices))
        .route_layer(bounded)
        .merge(
            OpenApiRouter::new()
                .routes(routes!(mypage::stream))
                .routes(routes!(health::live))
                .routes(routes!(health::ready))
                .routes(routes!(health::actuator))
                .routes(routes!(openapi_document)),
        )
        .split_for_parts();
    let mut openapi = openapi;
    crate::openapi::add_links(&mut openapi);
    let document = Arc::new(crate::openapi::to_json(&openapi));
    let router = api_routes
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::Extension(mypage::StreamSlots::new(max_streams)))
        .layer(axum::Extension(authenticator))
        .layer(axum::Extension(reservation_limiter))
        .layer(axum::Extension(OpenApiJson(document)))
        .layer(axum::middleware::from_fn(observe))
        .with_state(upstreams);
    (router, openapi)
}

/// The OpenAPI document, rendered once.
#[derive(Clone)]
struct OpenApiJson(Arc<String>);

/// This API's contract.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "health",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object)))]
async fn openapi_document(
    axum::Extension(OpenApiJson(document)): axum::Extension<OpenApiJson>,
) -> impl axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        document.as_str().to_owned(),
    )
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Counts a request admitted past the in-flight bound for as long as it is answered
/// (`http_server_requests_in_flight`): how close the gateway is to shedding.
async fn count_in_flight(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let _admitted = InFlight::enter();
    next.run(request).await
}

/// One admitted request; leaves the gauge when dropped (answered, or cancelled mid-way).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!(catalog::HTTP_IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(catalog::HTTP_IN_FLIGHT).decrement(1.0);
    }
}
