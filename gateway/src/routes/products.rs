//! `/product` routes ⇄ `reserve.product.v1.ProductService`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use http::{StatusCode, header};
use reserve_proto::product::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_error::ApiError;
use crate::auth::Credentials;
use crate::body::QueryParams;
use crate::body::{JsonBody, WireId};
use crate::paging::{Page, PageQuery};
use crate::status_names::{parse_product_status, product_status_name};
use crate::upstream::Upstreams;
use mesh_core::auth::Role;

/// `POST /product` body, as the original API sent it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RegisterProduct {
    /// 1 to 200 characters, no control, bidirectional or invisible characters.
    #[schema(example = "Phone", min_length = 1, max_length = 200)]
    product_name: String,
    /// Optional: a new product is always AVAILABLE (`01`).
    #[serde(default)]
    #[schema(
        example = "01",
        pattern = "^(01|[Aa][Vv][Aa][Ii][Ll][Aa][Bb][Ll][Ee])$"
    )]
    product_status: Option<String>,
}

/// A product as the original API showed it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProductJson {
    #[schema(example = 1)]
    id: i64,
    #[schema(example = "Phone")]
    product_name: String,
    /// `AVAILABLE`, `PENDING` (reserved) or `SOLD_OUT`.
    #[schema(value_type = String, example = "AVAILABLE")]
    product_status: &'static str,
    /// The reservation holding it, while PENDING or SOLD_OUT.
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
#[utoipa::path(post, path = "/product", operation_id = "register_product", tag = "products",
    description = "Registers a product of the calling seller (`http POST :8080/product productName=Phone productStatus=01`).",
    request_body(content = RegisterProduct, example = json!({"productName": "Phone", "productStatus": "01"})),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered", body = ProductJson, headers(("Location" = String, description = "`/product/{id}`"))),
        (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 401, description = "No bearer token, or one that does not verify", body = crate::openapi::ErrorBody, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"reserve-mesh\"`"))), (status = 403, description = "The caller may not do this", body = crate::openapi::ErrorBody), (status = 413, description = "Body over 16 KiB", body = crate::openapi::ErrorBody), (status = 415, description = "Body not declared `application/json`", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))
    ))]
pub(super) async fn register(
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
#[utoipa::path(get, path = "/product/{id}", operation_id = "get_product", tag = "products",
    params(("id" = i64, Path, description = "The product's id", minimum = 1)),
    responses((status = 200, description = "The product", body = ProductJson), (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 404, description = "No such resource", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))))]
pub(super) async fn get(
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

/// A page of products, in id order (`GET /product` and `GET /products`).
#[utoipa::path(get, path = "/products", operation_id = "list_products", tag = "products", params(PageQuery),
    responses(
        (status = 200, description = "A page of products", body = Vec<ProductJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))),
        (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))
    ))]
pub(super) async fn list(
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

/// `GET /product`: the same page as `GET /products` (the original API served both).
#[utoipa::path(get, path = "/product", operation_id = "list_products_at_product", tag = "products", params(PageQuery),
    responses(
        (status = 200, description = "A page of products", body = Vec<ProductJson>, headers(("Next-Page-Token" = String, description = "The next page's `pageToken`; absent on the last page"))),
        (status = 400, description = "Invalid input: the body, a parameter or a header", body = crate::openapi::ErrorBody), (status = 503, description = "Overloaded or a service is unavailable: try again shortly", body = crate::openapi::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait")))
    ))]
pub(super) async fn list_at_product(
    state: State<Upstreams>,
    page: QueryParams<PageQuery>,
) -> Result<Page<ProductJson>, ApiError> {
    list(state, page).await
}
