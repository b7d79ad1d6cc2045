//! `/paid` and `/payment` routes ⇄ `reserve.payment.v1.PaymentService`.

use axum::Json;
use axum::extract::{Path, State};
use reserve_proto::payment::v1 as pb;
use serde::{Deserialize, Serialize};

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
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PayBody {
    id: WireId,
    #[serde(default)]
    reservation_id: Option<WireId>,
    #[serde(default)]
    product_id: Option<WireId>,
    payment_status: String,
}

/// A payment as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentJson {
    id: i64,
    reservation_id: i64,
    product_id: i64,
    payment_status: &'static str,
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
pub async fn pay(
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
pub async fn get(
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
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFilter {
    #[serde(default)]
    reservation_id: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// The payments the caller may see, or a reservation's: a page (a JSON array either way).
pub async fn list(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    QueryParams(filter): QueryParams<PaymentFilter>,
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
            page_size: filter.page.size()?,
            page_token: filter.page.token(),
        }))
        .await?
        .into_inner();
    Ok(Page {
        rows: page.payments.into_iter().map(PaymentJson::from).collect(),
        next_page_token: page.next_page_token,
    })
}
