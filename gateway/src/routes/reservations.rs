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

use crate::api_error::ApiError;
use crate::auth::Credentials;
use crate::body::{JsonBody, QueryParams, WireId};
use crate::idempotency::IdempotencyKey;
use crate::paging::{Page, PageQuery};
use crate::rate_limit::RateLimiter;
use crate::status_names::{parse_reservation_status, reservation_status_name};
use crate::upstream::Upstreams;

/// `POST /reservation` body, as the original API sent it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateReservation {
    product_id: WireId,
    #[serde(default)]
    reservation_status: Option<String>,
    #[serde(default)]
    customer_id: Option<String>,
}

/// A reservation as the original API showed it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationJson {
    id: i64,
    product_id: i64,
    reservation_status: &'static str,
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
pub async fn create(
    State(upstreams): State<Upstreams>,
    Extension(limiter): Extension<Arc<RateLimiter>>,
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
    let reservation = upstreams
        .reservation
        .clone()
        .create_reservation(credentials.request(pb::CreateReservationRequest {
            product_id: body.product_id.0,
            customer_id,
            request_id,
        }))
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
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateReservation {
    id: WireId,
    #[serde(default)]
    product_id: Option<WireId>,
    reservation_status: String,
}

/// Cancels a reservation (the only update the API offers): `reservationStatus` must be
/// CANCELLED (`02`). The `id` decides; a `productId` that disagrees is ignored with a warning.
pub async fn update(
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
pub async fn get(
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
pub async fn list(
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
