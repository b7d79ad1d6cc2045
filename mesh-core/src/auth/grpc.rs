//! Authentication for every gRPC call, in one server layer: the `authorization` metadata is
//! verified before any handler runs, a bad token is answered UNAUTHENTICATED at once, and a
//! good one is left in the request for handlers to read with [`caller`]. Health checks and
//! reflection stay open (probes and `grpcurl list` carry no token).
//!
//! Calls without a token reach the handler: what needs no identity (reading products)
//! answers, everything else asks [`caller`] and gets UNAUTHENTICATED.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::{AuthError, Authenticator, Caller};

/// The layer; add it to the server builder.
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    /// Verifies callers with `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// The service the layer wraps around the server's routes.
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

/// The verified caller, as a request extension.
#[derive(Clone, Debug)]
struct Verified(Caller);

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for Authenticate<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Send + 'static,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone waits for the next.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        if is_open(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let authorization = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|value| value.to_str().unwrap_or("\u{0}"));
            match authenticator.authenticate(authorization).await {
                Ok(caller) => {
                    request.extensions_mut().insert(Verified(caller));
                }
                Err(AuthError::Missing) => {}
                Err(err) => return Ok(tonic::Status::from(err).into_http()),
            }
            inner.call(request).await
        })
    }
}

/// Health checks and reflection need no token.
fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// The verified caller of `request`, or UNAUTHENTICATED when it carried no token.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    request
        .extensions()
        .get::<Verified>()
        .map(|verified| verified.0.clone())
        .ok_or_else(|| AuthError::Missing.into())
}

/// `message` as a request carrying `authorization` (the caller's own `Bearer …` value), so a
/// service called on the caller's behalf sees the same caller.
pub fn on_behalf_of<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization.and_then(|value| value.parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
