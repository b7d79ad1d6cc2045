//! `/notice` routes ⇄ `reserve.notice.v1.NoticeService`: the log of notifications.

use axum::extract::State;
use reserve_proto::notice::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::auth::Credentials;
use crate::body::QueryParams;
use crate::paging::{Page, PageQuery};
use crate::upstream::Upstreams;

/// Query of `GET /notice`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoticeQuery {
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// One notification.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoticeJson {
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
pub async fn list(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    QueryParams(query): QueryParams<NoticeQuery>,
) -> Result<Page<NoticeJson>, ApiError> {
    let notices = upstreams
        .notice
        .clone()
        .list_notices(credentials.request(pb::ListNoticesRequest {
            page_size: query.page.size()?,
            page_token: query.page.token(),
            customer_id: query.customer_id.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Page {
        rows: notices.notices.into_iter().map(NoticeJson::from).collect(),
        next_page_token: notices.next_page_token,
    })
}
