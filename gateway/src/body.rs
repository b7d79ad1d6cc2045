//! Request input: JSON bodies, query strings and path ids, parsed into clear 4xx errors with
//! the same JSON error body as every other rejection (never axum's plain-text ones).
//!
//! Bodies must be `Content-Type: application/json` (415 otherwise: a browser form or a
//! `text/plain` cross-site POST never reaches a handler) and name only known fields (a
//! `customerID` typo is a 400 naming it, not a silently ignored field).
//!
//! The original clients send ids as JSON strings (`productId=3` in httpie, `"2"` in the load
//! test), so ids accept a number or a numeric string.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::StatusCode;
use http::request::Parts;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::api_error::ApiError;

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

/// A JSON request body whose every failure is an [`ApiError`] with a JSON body.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::body_too_large(BODY_LIMIT_BYTES)
                } else {
                    ApiError::malformed_body(rejection.body_text())
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::malformed_body(
                "request body is empty; send a JSON object",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|err| ApiError::malformed_body(format!("invalid JSON body: {err}")))
    }
}

/// Whether the request says its body is JSON (`application/json`, any parameters).
fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// A query string parsed into `T`; a query that does not fit is a 400 with the JSON body.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|err| ApiError::invalid_query(format!("invalid query string: {err}")))
    }
}

/// A positive id given as a JSON number or a numeric string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireId(pub i64);

impl WireId {
    /// Parses an id from a path segment or string field.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().parse::<i64>() {
            Ok(id) if id > 0 => Ok(Self(id)),
            _ => Err(format!("{raw:?} is not a positive whole number")),
        }
    }

    /// Parses a path segment, naming it in the error.
    pub fn from_path(raw: &str, what: &str) -> Result<Self, ApiError> {
        Self::parse(raw).map_err(|reason| ApiError::bad_request(format!("{what}: {reason}")))
    }
}

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WireIdVisitor)
    }
}

struct WireIdVisitor;

impl Visitor<'_> for WireIdVisitor {
    type Value = WireId;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a positive whole number (or a string holding one)")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<WireId, E> {
        if value > 0 {
            Ok(WireId(value))
        } else {
            Err(E::custom(format!("{value} is not a positive whole number")))
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<WireId, E> {
        i64::try_from(value)
            .map_err(|_| E::custom(format!("{value} is too large")))
            .and_then(|value| self.visit_i64(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<WireId, E> {
        WireId::parse(value).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        product_id: WireId,
    }

    fn parse(json: &str) -> Result<i64, String> {
        serde_json::from_str::<Body>(json)
            .map(|body| body.product_id.0)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn ids_accept_numbers_and_numeric_strings() {
        assert_eq!(parse(r#"{"productId": 3}"#), Ok(3));
        assert_eq!(parse(r#"{"productId": "2"}"#), Ok(2));
    }

    #[test]
    fn ids_refuse_everything_else() {
        for bad in [
            r#"{"productId": 0}"#,
            r#"{"productId": -1}"#,
            r#"{"productId": "abc"}"#,
            r#"{"productId": 1.5}"#,
            r#"{"productId": true}"#,
            r#"{"productId": null}"#,
            r#"{}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
