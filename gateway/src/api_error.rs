//! Every REST error: a status code and a JSON body `{"error": "...", "code": "..."}`, never an
//! empty body or a stack trace. The one gRPC-status → HTTP mapping of the gateway lives here.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use tonic::Code;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// An error answered to a REST client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `not_found`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// For a 429: seconds until the caller may try again (`Retry-After`).
    pub retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
}

impl ApiError {
    /// A 400 for input that cannot be used.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_argument",
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// A 400 for a body that is not the JSON the route expects.
    pub fn malformed_body(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "malformed_body",
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// A 415 for a body that is not declared `application/json`.
    pub fn unsupported_media_type() -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "send the body as JSON with Content-Type: application/json".into(),
            retry_after_secs: None,
        }
    }

    /// A 400 for a query string that does not fit the route's parameters.
    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// A 404 for a path that no route serves.
    pub fn no_route(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "no_such_route",
            message: format!("no route for {path}"),
            retry_after_secs: None,
        }
    }

    /// A 405 for a known path with the wrong method.
    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "this route does not accept that method".into(),
            retry_after_secs: None,
        }
    }

    /// A 503 when the gateway already has as many requests in flight as it accepts.
    pub fn overloaded() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "try_again_shortly",
            message: "the gateway is overloaded; try again shortly".into(),
            retry_after_secs: None,
        }
    }

    /// A 401: no token, or one that does not verify. Carries `WWW-Authenticate: Bearer`.
    pub fn unauthenticated(err: &mesh_core::auth::AuthError) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: err.to_string(),
            retry_after_secs: None,
        }
    }

    /// A 403: the caller is known but may not do this.
    pub fn forbidden(denied: mesh_core::auth::Denied) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: denied.0,
            retry_after_secs: None,
        }
    }

    /// A 429: the caller made too many such requests; try again after `retry_after_secs`.
    pub fn too_many_requests(retry_after_secs: u64, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: message.into(),
            retry_after_secs: Some(retry_after_secs),
        }
    }

    /// A 500 for a bug in the gateway itself.
    pub fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error".into(),
            retry_after_secs: None,
        }
    }

    /// A 413 for a body over the limit.
    pub fn body_too_large(limit_bytes: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "body_too_large",
            message: format!("request body is larger than {limit_bytes} bytes"),
            retry_after_secs: None,
        }
    }
}

/// Whether a status is the client's own report of a broken connection (an upstream closing
/// its connection while draining for a restart, say) rather than an answer from the service.
fn is_transport_failure(status: &tonic::Status) -> bool {
    let message = status.message();
    matches!(status.code(), Code::Internal | Code::Unknown)
        && (message.starts_with("h2 protocol error") || message.starts_with("transport error"))
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        if is_transport_failure(&status) {
            tracing::warn!(
                message = status.message(),
                "upstream connection failed; answering 503"
            );
            return Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "try_again_shortly",
                message: "the service is restarting; try again shortly".into(),
                retry_after_secs: None,
            };
        }
        let (http, code) = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => {
                (StatusCode::BAD_REQUEST, "invalid_argument")
            }
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "forbidden"),
            Code::FailedPrecondition | Code::Aborted => (StatusCode::CONFLICT, "conflict"),
            // Our services answer ALREADY_EXISTS only for an idempotency key reused with
            // another request.
            Code::AlreadyExists => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            // Cancelled: the upstream connection went away under the call (a service draining
            // for a restart refuses new streams); nothing was accepted, so the client retries.
            Code::Unavailable
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Cancelled => (StatusCode::SERVICE_UNAVAILABLE, "try_again_shortly"),
            Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = if http == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = ?status.code(), message = status.message(), "upstream failure");
            "internal error".to_owned()
        } else if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            status.message().to_owned()
        };
        Self {
            status: http,
            code,
            message,
            retry_after_secs: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: &self.message,
            code: self.code,
        });
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"reserve-mesh\""),
            );
        }
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the oversized body is never read, so the connection cannot carry
            // another request: say so, or a keep-alive client reuses it and fails.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http() {
        let cases = [
            (
                tonic::Status::invalid_argument("x"),
                StatusCode::BAD_REQUEST,
            ),
            (tonic::Status::not_found("x"), StatusCode::NOT_FOUND),
            (
                tonic::Status::failed_precondition("x"),
                StatusCode::CONFLICT,
            ),
            (
                tonic::Status::unavailable("x"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                tonic::Status::resource_exhausted("x"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                tonic::Status::internal("secret detail"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (status, http) in cases {
            assert_eq!(ApiError::from(status).status, http);
        }
    }

    #[test]
    fn a_broken_upstream_connection_is_a_503_not_a_500() {
        let broken = tonic::Status::internal("h2 protocol error: http2 error");
        assert_eq!(
            ApiError::from(broken).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let cancelled = tonic::Status::cancelled("operation was canceled");
        assert_eq!(
            ApiError::from(cancelled).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn internal_details_are_not_leaked() {
        let err = ApiError::from(tonic::Status::internal("stack trace here"));
        assert_eq!(err.message, "internal error");
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let response = ApiError::from(tonic::Status::unavailable("busy")).into_response();
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(http::HeaderValue::as_bytes),
            Some(&b"1"[..])
        );
    }
}
