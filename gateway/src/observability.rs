//! One span and the RED metrics per REST request. The span is the root of the request's trace
//! (or the child of a `traceparent` the caller sent), and every gRPC call the handler makes
//! carries it on, so the services' spans hang under it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use mesh_core::telemetry::catalog;
use mesh_core::trace_context;
use tracing::Instrument;

/// Routes probed every few seconds: counted, not traced.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/actuator/health"];

/// When a request reached the gateway (a request extension set by [`observe`]): deadlines a
/// handler passes on count from here, so time spent queueing in the gateway counts too.
#[derive(Clone, Copy, Debug)]
pub struct Arrival(pub Instant);

impl Arrival {
    /// What is left of `budget` since the request arrived (zero once it is spent).
    pub fn remaining(self, budget: std::time::Duration) -> std::time::Duration {
        budget.saturating_sub(self.0.elapsed())
    }
}

/// The middleware (`axum::middleware::from_fn(observe)`).
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    request.extensions_mut().insert(Arrival(started));
    let method = method_label(request.method()).to_owned();
    // The route template (`/product/{id}`), never the raw path: bounded label values.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = if PROBES.contains(&route.as_str()) {
        tracing::Span::none()
    } else {
        let span = tracing::info_span!(
            "http.server",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
        );
        trace_context::adopt(&span, trace_context::from_headers(request.headers()));
        span
    };
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    metrics::counter!(
        catalog::HTTP_REQUESTS,
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        catalog::HTTP_REQUEST_SECONDS,
        "method" => method,
        "route" => route,
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label value: the standard ones by name, anything else `OTHER`, so a client
/// inventing methods cannot grow the label set without bound.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        let invented = http::Method::from_bytes(b"BREW").expect("a token");
        assert_eq!(method_label(&invented), "OTHER");
    }
}
