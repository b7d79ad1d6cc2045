//! The tonic service: maps protobuf requests to domain calls and domain errors to statuses.
//! No business rule lives here.

use mesh_core::Db;
use mesh_core::rpc_observability::{IdKind, record_id};
use reserve_proto::product::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::{self, Id, Product, ProductError, ProductName, ProductStatus};
use crate::faults::FaultSwitch;
use crate::store::{self, StoreError};

/// The `reserve.product.v1.ProductService` implementation.
#[derive(Clone)]
pub struct ProductApi {
    db: Db,
    faults: FaultSwitch,
}

impl ProductApi {
    /// A service backed by `db`, injecting the faults `faults` holds into ReserveProduct.
    pub fn new(db: Db, faults: FaultSwitch) -> Self {
        Self { db, faults }
    }

    /// Applies injected faults (off unless switched on): a delay, then maybe an UNAVAILABLE.
    async fn injected_fault(&self) -> Result<(), Status> {
        let faults = self.faults.get();
        if !faults.is_on() {
            return Ok(());
        }
        tokio::time::sleep(faults.delay(fastrand::f64())).await;
        if faults.fails(fastrand::f64()) {
            return Err(Status::unavailable(
                "injected fault: product service unavailable",
            ));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl pb::product_service_server::ProductService for ProductApi {
    async fn register_product(
        &self,
        request: Request<pb::RegisterProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let request = request.into_inner();
        let name = ProductName::parse(&request.name)?;
        let status = domain::initial_status(status_from_wire(request.status)?)?;
        let product = self
            .db
            .run(move |conn| store::register(conn, &name, status))
            .await?;
        record_id(IdKind::Product, product.id.get());
        tracing::info!(product = %product.id, name = %product.name, "product registered");
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
        _request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let products = self.db.run(store::list).await?;
        Ok(Response::new(pb::ListProductsResponse {
            products: products.into_iter().map(to_wire).collect(),
        }))
    }

    async fn reserve_product(
        &self,
        request: Request<pb::ReserveProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        // The caller's deadline, from `grpc-timeout`: a lock that would commit after it is not
        // taken, since the caller has already given up on it.
        let deadline = mesh_core::grpc_deadline::deadline_of(request.metadata());
        let request = request.into_inner();
        let product = Id::parse(request.product_id, "product id")?;
        let reservation = Id::parse(request.reservation_id, "reservation id")?;
        record_id(IdKind::Product, product.get());
        record_id(IdKind::Reservation, reservation.get());
        self.injected_fault().await?;
        let locked = self
            .db
            .transaction(move |conn| store::reserve(conn, product, reservation, deadline))
            .await?;
        tracing::info!(product = %product, reservation = %reservation, "product reserved");
        Ok(Response::new(to_wire(locked)))
    }

    async fn release_product(
        &self,
        request: Request<pb::ReleaseProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let request = request.into_inner();
        let product = Id::parse(request.product_id, "product id")?;
        let reservation = Id::parse(request.reservation_id, "reservation id")?;
        record_id(IdKind::Product, product.get());
        record_id(IdKind::Reservation, reservation.get());
        let current = self
            .db
            .transaction(move |conn| store::release(conn, product, reservation))
            .await?;
        Ok(Response::new(to_wire(current)))
    }
}

fn status_from_wire(raw: i32) -> Result<Option<ProductStatus>, Status> {
    match pb::ProductStatus::try_from(raw) {
        Ok(pb::ProductStatus::Unspecified) => Ok(None),
        Ok(pb::ProductStatus::Available) => Ok(Some(ProductStatus::Available)),
        Ok(pb::ProductStatus::Pending) => Ok(Some(ProductStatus::Pending)),
        Ok(pb::ProductStatus::SoldOut) => Ok(Some(ProductStatus::SoldOut)),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown product status {raw}"
        ))),
    }
}

fn to_wire(product: Product) -> pb::Product {
    let status = match product.status {
        ProductStatus::Available => pb::ProductStatus::Available,
        ProductStatus::Pending => pb::ProductStatus::Pending,
        ProductStatus::SoldOut => pb::ProductStatus::SoldOut,
    };
    pb::Product {
        id: product.id.get(),
        name: product.name,
        status: status.into(),
        reservation_id: product.holder.map(Id::get).unwrap_or_default(),
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

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Domain(err) => err.into(),
            StoreError::Db(err) => err.into_status("product"),
            StoreError::Corrupt { .. } => {
                tracing::error!(%err, "corrupt product row");
                Status::internal("product record is corrupt")
            }
        }
    }
}
