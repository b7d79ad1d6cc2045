//! `/reservation` routes ⇄ `reserve.reservation.v1.ReservationService`.

use axum::Json;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use http::{StatusCode, header};
use mesh_core::auth::Role;
use mesh_core::auth::caller::reserving_customer;
use reserve_proto::reservation::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_error::ApiError;
use crate::auth::Credentials;
use crate::body::{JsonBody, QueryParams, WireId};
use crate::idempotency::IdempotencyKey;
use crate::observability::Arrival;
use crate::paging::{Page, PageQuery};
use crate::rate_limit::RateLimiter;
use crate::status_names::{parse_reservation_status, reservation_status_name};
use crate::upstream::Upstreams;

/// What the gateway keeps of `RESERVE_TIMEOUT_MS` for itself: the time a request spends
/// before its arrival is stamped (accepted, read, parsed; longer when the cores are busy) and
/// the time to translate and write the answer. The promise is kept on the buyer's clock, so
/// the call to reservation-svc gets the rest. Measured with `script/bench fault`: without it
/// the slowest answers reached the client 1-60 ms after the timeout.
const REPLY_MARGIN: std::time::Duration = std::time::Duration::from_millis(30);

/// `POST /reservation` body, as the original API sent it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateReservation {
    /// The product to reserve (a number or a numeric string).
    #[schema(value_type = i64, minimum = 1, example = 3)]
    product_id: WireId,
    /// Optional: a new reservation is RESERVED (`01`).
    #[serde(default)]
    #[schema(example = "01", pattern = "^(01|[Rr][Ee][Ss][Ee][Rr][Vv][Ee][Dd])$")]
    reservation_status: Option<String>,
    /// Optional: the caller's own id (another is 403).
    #[serde(default)]
    customer_id: Option<String>,
}

/// A reservation as the original API showed it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReservationJson {
    #[schema(example = 1)]
    id: i64,
    #[schema(example = 3)]
    product_id: i64,
    /// `RESERVED`, `CANCELLED` or `CONFIRMED` (paid).
    #[schema(value_type = String, example = "RESERVED")]
    reservation_status: &'static str,
    #[schema(example = "anonymous")]
    customer_id: String,
}

impl From<pb::Reservation> for ReservationJson {
    fn from(reservation: pb::Reservation) -> Self {
        Self {
            id: reservation.id,
            product_id: reservation.product_id,
            reservation_status: reservation_status_name(reservation.status()),
            customer_id: reservation.customer_id,
        }
    }
}

/// Reserves a product: 201, 409 when taken, 503 (Retry-After) when the lock cannot be had now.
#[utoipa::path(post, path = "/reservation", operation_id = "create_reservation", tag = "reservations",
    description = "Reserves a product for the calling buyer, locking it (`http POST :8080/reservation productId=3 reservationStatus=01`).",
    request_body(content = CreateReservation, example = json!({"productId": 3, "reservationStatus": "01"})),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry safe: the same key with the same request gets the first answer (kept 24 h); 1 to 255 visible ASCII characters")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Reserved; the product is PENDING", body = ReservationJson, headers(("Location" = String, description = "`/reservation/{id}`"))),
        (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 413, description = "Body over 16 KiB", body = crate::openapi::ErrorBody), (status = 415, description = "Body not declared `application/json`", body = crate::openapi::ErrorBody), (status = 404, description = "No such resource", body = crate::openapi::ErrorBody), (status = 409, description = "Not possible in the current state", body = crate::openapi::ErrorBody), (status = 422, description = "Idempotency-Key reused with another request", body = crate::openapi::ErrorBody), (status = 429, description = "Too many reservations from this buyer", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))
    ))]
pub(super) async fn create(
    State(upstreams): State<Upstreams>,
    Extension(limiter): Extension<Arc<RateLimiter>>,
    arrival: Option<Extension<Arrival>>,
    credentials: Credentials,
    IdempotencyKey(request_id): IdempotencyKey,
    JsonBody(body): JsonBody<CreateReservation>,
) -> Result<impl IntoResponse, ApiError> {
    let customer_id = reserving_customer(
        &credentials.caller,
        body.customer_id.as_deref().unwrap_or(""),
    )
    .map_err(ApiError::forbidden)?;
    limiter.check(&customer_id).map_err(|wait| {
        ApiError::too_many_requests(wait, "too many reservations from this buyer")
    })?;
    if let Some(status) = body.reservation_status.as_deref()
        && parse_reservation_status(status)? != pb::ReservationStatus::Reserved
    {
        return Err(ApiError::bad_request(format!(
            "a new reservation starts RESERVED (01), not {status:?}"
        )));
    }
    let mut request = credentials.request(pb::CreateReservationRequest {
        product_id: body.product_id.0,
        customer_id,
        request_id,
    });
    // The answer is due `reserve_timeout` after the request reached the gateway, not after
    // it reached this line, less what the gateway keeps to read and write: reservation-svc
    // ends the product lock in time for that.
    let budget = upstreams.reserve_timeout();
    let left = arrival.map_or(budget, |Extension(arrival)| arrival.remaining(budget));
    request.set_timeout(left.saturating_sub(REPLY_MARGIN));
    let reservation = upstreams
        .reservation
        .clone()
        .create_reservation(request)
        .await?
        .into_inner();
    let location = format!("/reservation/{}", reservation.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ReservationJson::from(reservation)),
    ))
}

/// `PATCH /reservationupdate` body, as the original API sent it to cancel.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateReservation {
    /// The reservation.
    #[schema(value_type = i64, minimum = 1, example = 2)]
    id: WireId,
    /// Ignored (the original sent it); a value that disagrees is logged.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, example = 1)]
    product_id: Option<WireId>,
    /// Must be CANCELLED (`02`).
    #[schema(
        example = "02",
        pattern = "^(02|[Cc][Aa][Nn][Cc][Ee][Ll][Ll]?[Ee][Dd])$"
    )]
    reservation_status: String,
}

/// Cancels a reservation (the only update the API offers): `reservationStatus` must be
/// CANCELLED (`02`). The `id` decides; a `productId` that disagrees is ignored with a warning.
#[utoipa::path(patch, path = "/reservationupdate", operation_id = "cancel_reservation", tag = "reservations",
    description = "Cancels a reservation, freeing its product (`http PATCH :8080/reservationupdate id=2 productId=1 reservationStatus=02`).",
    request_body(content = UpdateReservation, example = json!({"id": 2, "productId": 1, "reservationStatus": "02"})),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry safe: the same key with the same request gets the first answer (kept 24 h); 1 to 255 visible ASCII characters")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = ReservationJson),
        (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 413, description = "Body over 16 KiB", body = crate::openapi::ErrorBody), (status = 415, description = "Body not declared `application/json`", body = crate::openapi::ErrorBody), (status = 404, description = "No such resource", body = crate::openapi::ErrorBody), (status = 409, description = "Not possible in the current state", body = crate::openapi::ErrorBody), (status = 422, description = "Idempotency-Key reused with another request", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))
    ))]
pub(super) async fn update(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    IdempotencyKey(request_id): IdempotencyKey,
    JsonBody(body): JsonBody<UpdateReservation>,
) -> Result<Json<ReservationJson>, ApiError> {
    credentials.require_any(&[Role::Buyer, Role::Admin], "cancel a reservation")?;
    if parse_reservation_status(&body.reservation_status)? != pb::ReservationStatus::Cancelled {
        return Err(ApiError::bad_request(format!(
            "a reservation can only be updated to CANCELLED (02), not {:?}",
            body.reservation_status
        )));
    }
    let cancelled = upstreams
        .reservation
        .clone()
        .cancel_reservation(credentials.request(pb::CancelReservationRequest {
            id: body.id.0,
            request_id,
        }))
        .await?
        .into_inner();
    if let Some(product) = body.product_id.filter(|p| p.0 != cancelled.product_id) {
        tracing::warn!(
            reservation = cancelled.id,
            given = product.0,
            actual = cancelled.product_id,
            "productId in the request disagrees with the reservation; ignored"
        );
    }
    Ok(Json(cancelled.into()))
}

/// One reservation.
#[utoipa::path(get, path = "/reservation/{id}", operation_id = "get_reservation", tag = "reservations",
    params(("id" = i64, Path, description = "The reservation's id", minimum = 1)),
    security(("bearer" = [])),
    responses((status = 200, description = "The reservation", body = ReservationJson), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))), (status = 404, description = "No such resource", body = crate::openapi::ErrorBody)))]
pub(super) async fn get(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    Path(id): Path<String>,
) -> Result<Json<ReservationJson>, ApiError> {
    let id = WireId::from_path(&id, "reservation id")?;
    let reservation = upstreams
        .reservation
        .clone()
        .get_reservation(credentials.request(pb::GetReservationRequest { id: id.0 }))
        .await?
        .into_inner();
    Ok(Json(reservation.into()))
}

/// A page of the reservations the caller may see, in id order.
#[utoipa::path(get, path = "/reservations", operation_id = "list_reservations", tag = "reservations", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "What the caller bought or sells (an admin: all)", body = Vec<ReservationJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(super) async fn list(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Page<ReservationJson>, ApiError> {
    let listed = upstreams
        .reservation
        .clone()
        .list_reservations(credentials.request(pb::ListReservationsRequest {
            page_size: page.size()?,
            page_token: page.token(),
        }))
        .await?
        .into_inner();
    Ok(Page {
        rows: listed
            .reservations
            .into_iter()
            .map(ReservationJson::from)
            .collect(),
        next_page_token: listed.next_page_token,
    })
}

/// `GET /reservation`: the same page as `GET /reservations`.
#[utoipa::path(get, path = "/reservation", operation_id = "list_reservations_at_reservation", tag = "reservations", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "What the caller bought or sells (an admin: all)", body = Vec<ReservationJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(super) async fn list_at_reservation(
    state: State<Upstreams>,
    credentials: Credentials,
    page: QueryParams<PageQuery>,
) -> Result<Page<ReservationJson>, ApiError> {
    list(state, credentials, page).await
}
