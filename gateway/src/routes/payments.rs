//! `/paid` and `/payment` routes ⇄ `reserve.payment.v1.PaymentService`.

use axum::Json;
use axum::extract::{Path, State};
use reserve_proto::payment::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api_error::ApiError;
use crate::auth::Credentials;
use crate::body::QueryParams;
use crate::body::{JsonBody, WireId};
use crate::idempotency::IdempotencyKey;
use crate::paging::{Page, PageQuery};
use crate::status_names::{parse_payment_status, payment_status_name};
use crate::upstream::Upstreams;
use mesh_core::auth::Role;

/// `PATCH /paid` body, as the original API sent it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PayBody {
    /// The payment.
    #[schema(value_type = i64, minimum = 1, example = 1)]
    id: WireId,
    /// Ignored (the original sent it); a value that disagrees is logged.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, example = 1)]
    reservation_id: Option<WireId>,
    /// Ignored (the original sent it); a value that disagrees is logged.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, example = 3)]
    product_id: Option<WireId>,
    /// Must be PAID (`02`).
    #[schema(example = "02", pattern = "^(02|[Pp][Aa][Ii][Dd])$")]
    payment_status: String,
}

/// A payment as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PaymentJson {
    #[schema(example = 1)]
    id: i64,
    #[schema(example = 1)]
    reservation_id: i64,
    #[schema(example = 3)]
    product_id: i64,
    /// `UNPAID`, `PAID`, `VOIDED` (cancelled before payment) or `REFUNDED`.
    #[schema(value_type = String, example = "PAID")]
    payment_status: &'static str,
    #[schema(example = "anonymous")]
    customer_id: String,
}

impl From<pb::Payment> for PaymentJson {
    fn from(payment: pb::Payment) -> Self {
        Self {
            id: payment.id,
            reservation_id: payment.reservation_id,
            product_id: payment.product_id,
            payment_status: payment_status_name(payment.status()),
            customer_id: payment.customer_id,
        }
    }
}

/// Pays a payment: `paymentStatus` must be PAID (`02`). The `id` decides; a `reservationId` or
/// `productId` that disagrees with the payment is ignored with a warning.
#[utoipa::path(patch, path = "/paid", operation_id = "pay", tag = "payments",
    description = "Pays a payment (`http PATCH :8080/paid id=1 reservationId=1 productId=3 paymentStatus=02`); the product is then SOLD_OUT.",
    request_body(content = PayBody, example = json!({"id": 1, "reservationId": 1, "productId": 3, "paymentStatus": "02"})),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry safe: the same key with the same request gets the first answer (kept 24 h); 1 to 255 visible ASCII characters")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Paid", body = PaymentJson),
        (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 413, description = "Body over 16 KiB", body = crate::openapi::ErrorBody), (status = 415, description = "Body not declared `application/json`", body = crate::openapi::ErrorBody), (status = 404, description = "No such resource", body = crate::openapi::ErrorBody), (status = 409, description = "Not possible in the current state", body = crate::openapi::ErrorBody), (status = 422, description = "Idempotency-Key reused with another request", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))
    ))]
pub(super) async fn pay(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    IdempotencyKey(request_id): IdempotencyKey,
    JsonBody(body): JsonBody<PayBody>,
) -> Result<Json<PaymentJson>, ApiError> {
    credentials.require_any(&[Role::Buyer, Role::Admin], "pay")?;
    if parse_payment_status(&body.payment_status)? != pb::PaymentStatus::Paid {
        return Err(ApiError::bad_request(format!(
            "a payment can only be updated to PAID (02), not {:?}",
            body.payment_status
        )));
    }
    let paid = upstreams
        .payment
        .clone()
        .pay(credentials.request(pb::PayRequest {
            id: body.id.0,
            request_id,
        }))
        .await?
        .into_inner();
    let disagrees = |given: Option<WireId>, actual: i64| given.is_some_and(|id| id.0 != actual);
    if disagrees(body.reservation_id, paid.reservation_id)
        || disagrees(body.product_id, paid.product_id)
    {
        tracing::warn!(
            payment = paid.id,
            reservation = paid.reservation_id,
            product = paid.product_id,
            "reservationId/productId in the request disagree with the payment; ignored"
        );
    }
    Ok(Json(paid.into()))
}

/// One payment.
#[utoipa::path(get, path = "/payment/{id}", operation_id = "get_payment", tag = "payments",
    params(("id" = i64, Path, description = "The payment's id", minimum = 1)),
    security(("bearer" = [])),
    responses((status = 200, description = "The payment", body = PaymentJson), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))), (status = 404, description = "No such resource", body = crate::openapi::ErrorBody)))]
pub(super) async fn get(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    Path(id): Path<String>,
) -> Result<Json<PaymentJson>, ApiError> {
    let id = WireId::from_path(&id, "payment id")?;
    let payment = upstreams
        .payment
        .clone()
        .get_payment(credentials.request(pb::GetPaymentRequest { id: id.0 }))
        .await?
        .into_inner();
    Ok(Json(payment.into()))
}

/// `?reservationId=N` of the payment list.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct PaymentFilter {
    /// Only this reservation's payment.
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1)]
    reservation_id: Option<String>,
}

/// The payments the caller may see, or a reservation's: a page (a JSON array either way).
#[utoipa::path(get, path = "/payments", operation_id = "list_payments", tag = "payments", params(PaymentFilter, PageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "What the caller owes or sells (an admin: all)", body = Vec<PaymentJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(super) async fn list(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    QueryParams(filter): QueryParams<PaymentFilter>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Page<PaymentJson>, ApiError> {
    let reservation_id = match filter.reservation_id.as_deref() {
        None => 0,
        Some(raw) => WireId::from_path(raw, "reservationId")?.0,
    };
    let page = upstreams
        .payment
        .clone()
        .list_payments(credentials.request(pb::ListPaymentsRequest {
            reservation_id,
            page_size: page.size()?,
            page_token: page.token(),
        }))
        .await?
        .into_inner();
    Ok(Page {
        rows: page.payments.into_iter().map(PaymentJson::from).collect(),
        next_page_token: page.next_page_token,
    })
}

/// `GET /payment`: the same page as `GET /payments` (`http :8080/payment reservationId==1`).
#[utoipa::path(get, path = "/payment", operation_id = "list_payments_at_payment", tag = "payments", params(PaymentFilter, PageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "What the caller owes or sells (an admin: all)", body = Vec<PaymentJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(super) async fn list_at_payment(
    state: State<Upstreams>,
    credentials: Credentials,
    filter: QueryParams<PaymentFilter>,
    page: QueryParams<PageQuery>,
) -> Result<Page<PaymentJson>, ApiError> {
    list(state, credentials, filter, page).await
}
