//! `/notice` routes ⇄ `reserve.notice.v1.NoticeService`: the log of notifications.

use axum::extract::State;
use reserve_proto::notice::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api_error::ApiError;
use crate::auth::Credentials;
use crate::body::QueryParams;
use crate::paging::{Page, PageQuery};
use crate::upstream::Upstreams;

/// Query of `GET /notice`.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct NoticeQuery {
    /// Whose notices: the caller's own when absent (an admin: everyone's).
    #[serde(default)]
    customer_id: Option<String>,
}

/// One notification.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct NoticeJson {
    id: i64,
    customer_id: String,
    event_type: String,
    reservation_id: i64,
    message: String,
    created_at: i64,
    delivery: String,
    attempts: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    last_error: String,
}

impl From<pb::Notice> for NoticeJson {
    fn from(notice: pb::Notice) -> Self {
        Self {
            id: notice.id,
            customer_id: notice.customer_id,
            event_type: notice.event_type,
            reservation_id: notice.reservation_id,
            message: notice.message,
            created_at: notice.created_at_unix_ms,
            delivery: notice.delivery,
            attempts: notice.attempts,
            last_error: notice.last_error,
        }
    }
}

/// `GET /notice?customerId=…` (and `/notices`): notifications, newest first.
#[utoipa::path(get, path = "/notice", operation_id = "list_notices", tag = "notices", params(NoticeQuery, PageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Notifications, newest first", body = Vec<NoticeJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(super) async fn list(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    QueryParams(query): QueryParams<NoticeQuery>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Page<NoticeJson>, ApiError> {
    let notices = upstreams
        .notice
        .clone()
        .list_notices(credentials.request(pb::ListNoticesRequest {
            page_size: page.size()?,
            page_token: page.token(),
            customer_id: query.customer_id.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Page {
        rows: notices.notices.into_iter().map(NoticeJson::from).collect(),
        next_page_token: notices.next_page_token,
    })
}

/// `GET /notices`: the same page as `GET /notice`.
#[utoipa::path(get, path = "/notices", operation_id = "list_notices_at_notices", tag = "notices", params(NoticeQuery, PageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Notifications, newest first", body = Vec<NoticeJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(super) async fn list_at_notices(
    state: State<Upstreams>,
    credentials: Credentials,
    query: QueryParams<NoticeQuery>,
    page: QueryParams<PageQuery>,
) -> Result<Page<NoticeJson>, ApiError> {
    list(state, credentials, query, page).await
}
