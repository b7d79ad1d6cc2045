//! Paged lists on the REST side: `pageSize` and `pageToken` query parameters in, a JSON array
//! and the `Next-Page-Token` header out (absent on the last page). The services issue and
//! check the tokens; the gateway only carries them.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::api_error::ApiError;

/// The header carrying the next page's token.
pub const NEXT_PAGE_TOKEN: &str = "next-page-token";

/// `pageSize` and `pageToken`, as every list route takes them.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows on the page (default 50, at most 500).
    #[serde(default)]
    #[param(value_type = Option<i32>, minimum = 1, maximum = 500)]
    pub page_size: Option<String>,
    /// The previous page's `Next-Page-Token`.
    #[serde(default)]
    pub page_token: Option<String>,
}

impl PageQuery {
    /// The size for the gRPC request (0: the service's default); a size that is not a whole
    /// number is a 400 here, one out of range a 400 from the service.
    pub fn size(&self) -> Result<i32, ApiError> {
        match self.page_size.as_deref().map(str::trim) {
            None | Some("") => Ok(0),
            Some(raw) => raw.parse::<i32>().map_err(|_| {
                ApiError::bad_request(format!("pageSize must be a whole number, got {raw:?}"))
            }),
        }
    }

    /// The token for the gRPC request (empty: the first page).
    pub fn token(&self) -> String {
        self.page_token.clone().unwrap_or_default()
    }
}

/// One page of a list: the rows as a JSON array, the next page's token in a header.
pub struct Page<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// The next page's token; empty on the last page.
    pub next_page_token: String,
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let mut response = Json(self.rows).into_response();
        if !self.next_page_token.is_empty()
            && let Ok(value) = HeaderValue::from_str(&self.next_page_token)
        {
            response.headers_mut().insert(NEXT_PAGE_TOKEN, value);
        }
        response
    }
}
