//! `/mypage` routes ⇄ `reserve.mypage.v1.MyPageService`: the buyer's page, paged, and live as
//! Server-Sent Events.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use mesh_core::telemetry::catalog;
use reserve_proto::mypage::v1 as pb;
use reserve_proto::payment::v1::PaymentStatus;
use reserve_proto::reservation::v1::ReservationStatus;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_stream::{Stream, StreamExt};

use crate::api_error::ApiError;
use crate::auth::Credentials;
use crate::body::QueryParams;
use crate::paging::{Page, PageQuery};
use crate::status_names::{payment_status_name, reservation_status_name};
use crate::upstream::Upstreams;

/// Query of `GET /mypage`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MyPageQuery {
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// One my-page row, in the original API's field names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MyPageJson {
    id: i64,
    reservation_id: i64,
    product_id: i64,
    product_name: String,
    customer_id: String,
    reservation_status: Option<&'static str>,
    payment_id: Option<i64>,
    payment_status: Option<&'static str>,
    updated_at: i64,
}

impl From<pb::MyPageEntry> for MyPageJson {
    fn from(entry: pb::MyPageEntry) -> Self {
        let reservation_status = Some(entry.reservation_status())
            .filter(|status| *status != ReservationStatus::Unspecified)
            .map(reservation_status_name);
        let payment_status = Some(entry.payment_status())
            .filter(|status| *status != PaymentStatus::Unspecified)
            .map(payment_status_name);
        Self {
            id: entry.reservation_id,
            reservation_id: entry.reservation_id,
            product_id: entry.product_id,
            product_name: entry.product_name,
            customer_id: entry.customer_id,
            reservation_status,
            payment_id: (entry.payment_id > 0).then_some(entry.payment_id),
            payment_status,
            updated_at: entry.updated_at_unix_ms,
        }
    }
}

/// `GET /mypage?customerId=…` (and `/myPages`): a page of entries, a JSON array; the next
/// page's token, when there is one, is in the `Next-Page-Token` header.
pub async fn list(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    QueryParams(query): QueryParams<MyPageQuery>,
) -> Result<Page<MyPageJson>, ApiError> {
    let page = upstreams
        .mypage
        .clone()
        .list_my_page(credentials.request(pb::ListMyPageRequest {
            page_size: query.page.size()?,
            page_token: query.page.token(),
            customer_id: query.customer_id.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Page {
        rows: page.entries.into_iter().map(MyPageJson::from).collect(),
        next_page_token: page.next_page_token,
    })
}

/// Query of `GET /mypage/stream`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamQuery {
    #[serde(default)]
    customer_id: Option<String>,
}

/// The live streams the gateway serves at once; each holds a slot until its client leaves.
#[derive(Clone)]
pub struct StreamSlots(Arc<Semaphore>);

impl StreamSlots {
    /// At most `max` streams at once.
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }
}

/// `GET /mypage/stream?customerId=…`: the buyer's entries now, then each change as it happens,
/// as Server-Sent Events (`event: mypage`, JSON data), with keep-alive comments. Past
/// `GATEWAY_MAX_STREAMS` live streams, 503 at once.
pub async fn stream(
    State(upstreams): State<Upstreams>,
    Extension(slots): Extension<StreamSlots>,
    credentials: Credentials,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Checked before a stream slot is taken: empty is the caller's own page; an admin, who
    // could watch anyone's, must say whose.
    let customer_id = mesh_core::auth::caller::page_owner(
        &credentials.caller,
        query.customer_id.as_deref().unwrap_or_default(),
    )
    .map_err(ApiError::forbidden)?;
    if customer_id.is_empty() {
        return Err(ApiError::bad_request(
            "customerId must name the buyer whose page to watch",
        ));
    }
    let slot = slots.0.try_acquire_owned().map_err(|_| {
        metrics::counter!(catalog::HTTP_SHED).increment(1);
        ApiError::overloaded()
    })?;
    let entries = upstreams
        .mypage
        .clone()
        .watch_my_page(credentials.request(pb::WatchMyPageRequest { customer_id }))
        .await?
        .into_inner();
    let events = entries.map_while(move |entry| {
        // The slot lives as long as the stream: dropped when the client goes away.
        let _slot = &slot;
        match entry {
            Ok(entry) => {
                let json = serde_json::to_string(&MyPageJson::from(entry)).unwrap_or_default();
                Some(Ok(Event::default().event("mypage").data(json)))
            }
            Err(status) => {
                tracing::warn!(message = status.message(), "my-page stream ended");
                None
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
