//! The public catalogue (`ProductService`): maps protobuf requests to domain calls and domain
//! errors to statuses. Registering needs a seller's token; reading needs none.

use mesh_core::Db;
use mesh_core::auth::Role;
use mesh_core::auth::grpc::caller;
use mesh_core::paging::PageRequest;
use mesh_core::rpc_observability::record_id;
use reserve_proto::product::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::{self, Id, Product, ProductError, ProductName, ProductStatus};
use crate::store;

/// The `reserve.product.v1.ProductService` implementation.
#[derive(Clone)]
pub struct ProductApi {
    db: Db,
}

impl ProductApi {
    /// A service backed by `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[tonic::async_trait]
impl pb::product_service_server::ProductService for ProductApi {
    async fn register_product(
        &self,
        request: Request<pb::RegisterProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let seller = caller(&request)?;
        seller.require(Role::Seller, "register a product")?;
        let request = request.into_inner();
        let name = ProductName::parse(&request.name)?;
        let status = domain::initial_status(status_from_wire(request.status)?)?;
        let product = self
            .db
            .run(move |conn| store::register(conn, &name, status, seller.subject()))
            .await?;
        record_id("product.id", product.id.get());
        tracing::info!(product = %product.id, name = %product.name, seller = %product.seller, "product registered");
        Ok(Response::new(to_wire(product)))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let id = Id::parse(request.into_inner().id, "product id")?;
        let product = self.db.run(move |conn| store::find(conn, id)).await?;
        Ok(Response::new(to_wire(product)))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        const SCOPE: &str = "products";
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token, SCOPE)?;
        let rows = self
            .db
            .run(move |conn| store::list_page(conn, page.after, page.probe_limit()))
            .await?;
        let (products, next_page_token) = page.finish(rows, SCOPE, |product| product.id.get());
        Ok(Response::new(pb::ListProductsResponse {
            products: products.into_iter().map(to_wire).collect(),
            next_page_token,
        }))
    }
}

pub(crate) fn status_from_wire(raw: i32) -> Result<Option<ProductStatus>, Status> {
    pb::ProductStatus::try_from(raw)
        .map(ProductStatus::from_wire)
        .map_err(|_| Status::invalid_argument(format!("unknown product status {raw}")))
}

pub(crate) fn to_wire(product: Product) -> pb::Product {
    let status = product.status.to_wire();
    pb::Product {
        id: product.id.get(),
        name: product.name,
        status: status.into(),
        reservation_id: product.holder.map(Id::get).unwrap_or_default(),
        seller_id: product.seller,
    }
}

impl From<ProductError> for Status {
    fn from(err: ProductError) -> Self {
        let message = err.to_string();
        match err {
            ProductError::InvalidId(_)
            | ProductError::InvalidName(_)
            | ProductError::InvalidInitialStatus(_) => Status::invalid_argument(message),
            ProductError::NotFound(_) => Status::not_found(message),
            ProductError::NotAvailable { .. } | ProductError::ReservationReleased(_) => {
                Status::failed_precondition(message)
            }
            ProductError::DeadlinePassed => Status::deadline_exceeded(message),
        }
    }
}
