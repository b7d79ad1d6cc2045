//! The `Idempotency-Key` header of the routes that change something (`POST /reservation`,
//! `PATCH /paid`, `PATCH /reservationupdate`): passed to the service as the gRPC request id,
//! which records the first answer under it (see `mesh_core::request_log`). A retry with the
//! same key and body gets that answer, status and body, even if the first never arrived; the
//! same key with another body gets 422.

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::api_error::ApiError;

/// The header's name.
pub const HEADER: &str = "idempotency-key";

/// The client's idempotency key; empty when it sent none.
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(Self(String::new()));
        };
        let malformed =
            |err: String| ApiError::bad_request(format!("Idempotency-Key header: {err}"));
        let raw = value
            .to_str()
            .map_err(|_| malformed("must be visible ASCII".into()))?;
        match mesh_core::request_log::parse_key(raw) {
            Ok(Some(key)) => Ok(Self(key.to_owned())),
            Ok(None) => Err(malformed("must not be empty".into())),
            Err(err) => Err(malformed(err.to_string())),
        }
    }
}
