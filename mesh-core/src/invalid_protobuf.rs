//! A request whose protobuf does not decode is the caller's mistake: tonic answers it
//! INTERNAL (as if the server were broken), this layer turns that answer into
//! INVALID_ARGUMENT, keeping tonic's message. Only that one answer is touched: a handler's
//! own INTERNAL passes unchanged.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderValue;
use tower::{Layer, Service};

/// What prost's decode errors start with, as tonic percent-encodes it into `grpc-message`.
const DECODE_FAILURE: &str = "failed%20to%20decode%20Protobuf%20message";

/// The layer; add it to the server builder inside the observability layer, so the metrics
/// count the corrected code.
#[derive(Clone, Copy, Debug, Default)]
pub struct InvalidProtobufLayer;

impl<S> Layer<S> for InvalidProtobufLayer {
    type Service = InvalidProtobuf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InvalidProtobuf { inner }
    }
}

/// The service the layer wraps around the routes.
#[derive(Clone, Debug)]
pub struct InvalidProtobuf<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for InvalidProtobuf<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            correct(response.headers_mut());
            Ok(response)
        })
    }
}

/// Rewrites a trailers-only INTERNAL that reports an undecodable request to INVALID_ARGUMENT.
fn correct(headers: &mut http::HeaderMap) {
    let internal = headers.get("grpc-status").is_some_and(|code| code == "13");
    let undecodable = headers
        .get("grpc-message")
        .and_then(|message| message.to_str().ok())
        .is_some_and(|message| message.starts_with(DECODE_FAILURE));
    if internal && undecodable {
        headers.insert("grpc-status", HeaderValue::from_static("3"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(code: &'static str, message: &'static str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static(code));
        headers.insert("grpc-message", HeaderValue::from_static(message));
        headers
    }

    #[test]
    fn an_undecodable_request_becomes_invalid_argument() {
        let mut undecodable = headers(
            "13",
            "failed%20to%20decode%20Protobuf%20message:%20buffer%20underflow",
        );
        correct(&mut undecodable);
        assert_eq!(undecodable["grpc-status"], "3");
    }

    #[test]
    fn other_internal_errors_stay_internal() {
        let mut broken = headers("13", "record%20is%20corrupt");
        correct(&mut broken);
        assert_eq!(broken["grpc-status"], "13");
        let mut not_found = headers("5", "failed%20to%20decode%20Protobuf%20message");
        correct(&mut not_found);
        assert_eq!(not_found["grpc-status"], "5");
    }
}
