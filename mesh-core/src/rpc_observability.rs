//! Server side of every gRPC call: one span per call, child of the caller's `traceparent`,
//! named after the method (`reserve.reservation.v1.ReservationService/Reserve`), and the RED
//! metrics (calls by status code, latency).
//!
//! Handlers name the ids they work on with [`record_id`], so a trace can be found by them.
//!
//! Health checks and reflection are counted but not traced: probes every few seconds would
//! bury the traces worth reading.
//!
//! Metric labels never come from a path the server does not serve: such a call is answered
//! UNIMPLEMENTED and counted under `unknown`/`unknown`, so a client (or a scanner) sending
//! made-up paths cannot grow the number of series without bound.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::catalog;
use crate::trace_context;

/// The layer; add it to the server builder.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcObservabilityLayer;

impl<S> Layer<S> for RpcObservabilityLayer {
    type Service = RpcObservability<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcObservability { inner }
    }
}

/// The service the layer wraps around the server's routes.
#[derive(Clone, Debug)]
pub struct RpcObservability<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for RpcObservability<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let span = if is_infrastructure(&service) {
            tracing::Span::none()
        } else {
            let span = tracing::info_span!(
                "grpc.server",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = tracing::field::Empty,
            );
            trace_context::adopt(&span, trace_context::from_headers(request.headers()));
            span
        };
        let started = Instant::now();
        let response = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let result = response.await;
                let code = match &result {
                    Ok(response) => status_code(response.headers()),
                    Err(_) => "TRANSPORT_ERROR",
                };
                tracing::Span::current().record("rpc.grpc.status_code", code);
                let (service, method) = metric_labels(service, method, code);
                metrics::counter!(
                    catalog::GRPC_HANDLED,
                    "grpc_service" => service.clone(),
                    "grpc_method" => method.clone(),
                    "grpc_code" => code,
                )
                .increment(1);
                metrics::histogram!(
                    catalog::GRPC_HANDLING_SECONDS,
                    "grpc_service" => service,
                    "grpc_method" => method,
                )
                .record(started.elapsed().as_secs_f64());
                result
            }
            .instrument(span),
        )
    }
}

/// Records `id` on the current call's trace span as the attribute `attribute`, named by the
/// service that knows what the id is (`reservation.id`, say), so a trace can be found by it;
/// a no-op outside a call.
pub fn record_id(attribute: &'static str, id: i64) {
    tracing::Span::current().set_attribute(attribute, id);
}

/// The metric labels of a call: its service and method, or `unknown` for both when the server
/// answered UNIMPLEMENTED (no such route; none of our handlers answers it otherwise).
fn metric_labels(service: String, method: String, code: &str) -> (String, String) {
    if code == "UNIMPLEMENTED" {
        (UNKNOWN.to_owned(), UNKNOWN.to_owned())
    } else {
        (service, method)
    }
}

/// The label of calls to paths the server does not serve.
const UNKNOWN: &str = "unknown";

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`).
fn split_path(path: &str) -> (String, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) => (service.to_owned(), method.to_owned()),
        None => (trimmed.to_owned(), String::new()),
    }
}

fn is_infrastructure(service: &str) -> bool {
    service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.")
}

/// The status code of a response whose status is known from its headers (a failed call is
/// answered "trailers-only", with `grpc-status` in the headers); otherwise the call is
/// still streaming or succeeded, and its status follows in the trailers: counted as OK.
fn status_code(headers: &http::HeaderMap) -> &'static str {
    let code = headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .unwrap_or(0);
    code_name(tonic::Code::from_i32(code))
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/reserve.product.v1.ProductService/ReserveProduct"),
            (
                "reserve.product.v1.ProductService".into(),
                "ReserveProduct".into()
            )
        );
        assert_eq!(split_path("/odd"), ("odd".into(), String::new()));
    }

    #[test]
    fn paths_the_server_does_not_serve_share_one_label() {
        assert_eq!(
            metric_labels(
                "made.up.Service".into(),
                "Anything123".into(),
                "UNIMPLEMENTED"
            ),
            ("unknown".into(), "unknown".into())
        );
        assert_eq!(
            metric_labels(
                "reserve.product.v1.ProductService".into(),
                "GetProduct".into(),
                "NOT_FOUND"
            ),
            (
                "reserve.product.v1.ProductService".into(),
                "GetProduct".into()
            )
        );
    }

    #[test]
    fn status_comes_from_trailers_only_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), "OK");
        headers.insert("grpc-status", http::HeaderValue::from_static("9"));
        assert_eq!(status_code(&headers), "FAILED_PRECONDITION");
    }

    #[test]
    fn probes_are_not_traced() {
        assert!(is_infrastructure("grpc.health.v1.Health"));
        assert!(!is_infrastructure("reserve.product.v1.ProductService"));
    }
}
