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
use utoipa::{IntoParams, ToSchema};

use crate::api_error::ApiError;
use crate::auth::Credentials;
use crate::body::QueryParams;
use crate::paging::{Page, PageQuery};
use crate::status_names::{payment_status_name, reservation_status_name};
use crate::upstream::Upstreams;

/// Query of `GET /mypage`.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct MyPageQuery {
    /// Whose page: the caller's own when absent (an admin: every buyer's).
    #[serde(default)]
    customer_id: Option<String>,
}

/// One my-page row, in the original API's field names.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct MyPageJson {
    id: i64,
    reservation_id: i64,
    product_id: i64,
    product_name: String,
    customer_id: String,
    #[schema(value_type = Option<String>, example = "CONFIRMED")]
    reservation_status: Option<&'static str>,
    payment_id: Option<i64>,
    #[schema(value_type = Option<String>, example = "PAID")]
    payment_status: Option<&'static str>,
    /// Unix milliseconds of the last change.
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
#[utoipa::path(get, path = "/mypage", operation_id = "list_my_page", tag = "my page", params(MyPageQuery, PageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The buyer's reservations with their payments", body = Vec<MyPageJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(super) async fn list(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    QueryParams(query): QueryParams<MyPageQuery>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Page<MyPageJson>, ApiError> {
    let page = upstreams
        .mypage
        .clone()
        .list_my_page(credentials.request(pb::ListMyPageRequest {
            page_size: page.size()?,
            page_token: page.token(),
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
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct StreamQuery {
    /// Whose page: the caller's own when absent.
    #[serde(default)]
    customer_id: Option<String>,
}

/// `GET /myPages` (the original's Spring Data REST path): the same page as `GET /mypage`.
#[utoipa::path(get, path = "/myPages", operation_id = "list_my_pages", tag = "my page", params(MyPageQuery, PageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The buyer's reservations with their payments", body = Vec<MyPageJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(super) async fn list_at_my_pages(
    state: State<Upstreams>,
    credentials: Credentials,
    query: QueryParams<MyPageQuery>,
    page: QueryParams<PageQuery>,
) -> Result<Page<MyPageJson>, ApiError> {
    list(state, credentials, query, page).await
}

/// One Server-Sent Event of `GET /mypage/stream`, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[allow(dead_code)] // documents what `stream` sends
pub(super) struct MyPageEvent {
    /// Always `mypage`.
    #[schema(example = "mypage")]
    event: String,
    /// A my-page row (the JSON of `MyPageJson`).
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// The live streams the gateway serves at once; each holds a slot until its client leaves.
#[derive(Clone)]
pub(super) struct StreamSlots(Arc<Semaphore>);

impl StreamSlots {
    /// At most `max` streams at once.
    pub(super) fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }
}

/// `GET /mypage/stream?customerId=…`: the buyer's entries now, then each change as it happens,
/// as Server-Sent Events (`event: mypage`, JSON data), with keep-alive comments. Past
/// `GATEWAY_MAX_STREAMS` live streams, 503 at once.
#[utoipa::path(get, path = "/mypage/stream", operation_id = "watch_my_page", tag = "my page", params(StreamQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Server-Sent Events: `event: mypage`, a my-page row as JSON data, then one per change", content_type = "text/event-stream", body = MyPageEvent),
        (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))
    ))]
pub(super) async fn stream(
    State(upstreams): State<Upstreams>,
    Extension(slots): Extension<StreamSlots>,
    credentials: Credentials,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Checked before a stream slot is taken: none named is the caller's own page (an admin's
    // too: a stream of everyone's would be unbounded).
    let requested = query.customer_id.as_deref().unwrap_or_default().trim();
    let customer_id = if requested.is_empty() {
        credentials.caller.subject().to_owned()
    } else {
        mesh_core::auth::caller::page_owner(&credentials.caller, requested)
            .map_err(ApiError::forbidden)?
    };
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
