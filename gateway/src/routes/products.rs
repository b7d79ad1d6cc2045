//! `/product` routes ⇄ `reserve.product.v1.ProductService`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use http::{StatusCode, header};
use reserve_proto::product::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::auth::Credentials;
use crate::body::QueryParams;
use crate::body::{JsonBody, WireId};
use crate::paging::{Page, PageQuery};
use crate::status_names::{parse_product_status, product_status_name};
use crate::upstream::Upstreams;
use mesh_core::auth::Role;

/// `POST /product` body, as the original API sent it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterProduct {
    product_name: String,
    #[serde(default)]
    product_status: Option<String>,
}

/// A product as the original API showed it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductJson {
    id: i64,
    product_name: String,
    product_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<i64>,
}

impl From<pb::Product> for ProductJson {
    fn from(product: pb::Product) -> Self {
        Self {
            id: product.id,
            product_status: product_status_name(product.status()),
            product_name: product.name,
            reservation_id: (product.reservation_id > 0).then_some(product.reservation_id),
        }
    }
}

/// Registers a product: 201 with the product and its Location.
pub async fn register(
    State(upstreams): State<Upstreams>,
    credentials: Credentials,
    JsonBody(body): JsonBody<RegisterProduct>,
) -> Result<impl IntoResponse, ApiError> {
    credentials.require(Role::Seller, "register a product")?;
    let status = body
        .product_status
        .as_deref()
        .map(parse_product_status)
        .transpose()?
        .unwrap_or(pb::ProductStatus::Unspecified);
    let product = upstreams
        .product
        .clone()
        .register_product(credentials.request(pb::RegisterProductRequest {
            name: body.product_name,
            status: status.into(),
        }))
        .await?
        .into_inner();
    let location = format!("/product/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ProductJson::from(product)),
    ))
}

/// One product.
pub async fn get(
    State(upstreams): State<Upstreams>,
    Path(id): Path<String>,
) -> Result<Json<ProductJson>, ApiError> {
    let id = WireId::from_path(&id, "product id")?;
    let product = upstreams
        .product
        .clone()
        .get_product(pb::GetProductRequest { id: id.0 })
        .await?
        .into_inner();
    Ok(Json(product.into()))
}

/// A page of products, in id order.
pub async fn list(
    State(upstreams): State<Upstreams>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Page<ProductJson>, ApiError> {
    let listed = upstreams
        .product
        .clone()
        .list_products(pb::ListProductsRequest {
            page_size: page.size()?,
            page_token: page.token(),
        })
        .await?
        .into_inner();
    Ok(Page {
        rows: listed.products.into_iter().map(ProductJson::from).collect(),
        next_page_token: listed.next_page_token,
    })
}
