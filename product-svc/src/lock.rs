//! The lock (`ProductLockService`) reservation-svc takes and frees: served on the internal
//! listener only, which the gateway never routes to and the chart's network policy opens
//! to reservation-svc alone. Faults switched on through the admin service are injected here.

use mesh_core::batch_commit::{Batch, BatchCommit};
use mesh_core::rpc_observability::record_id;
use mesh_core::{Db, DbConnection};
use reserve_proto::product::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::Id;
use crate::faults::FaultSwitch;
use crate::grpc::to_wire;
use crate::store;

/// The `reserve.product.v1.ProductLockService` implementation.
#[derive(Clone)]
pub struct ProductLockApi {
    db: Db,
    /// Locks arriving together share one statement, its own transaction
    /// ([`mesh_core::batch_commit`]).
    locks: BatchCommit<Locks>,
    faults: FaultSwitch,
}

impl ProductLockApi {
    /// A lock over `db`, injecting the faults `faults` holds into ReserveProduct.
    pub fn new(db: Db, faults: FaultSwitch) -> Self {
        Self {
            locks: BatchCommit::new(db.clone(), Locks),
            db,
            faults,
        }
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

/// Product locks taken together: [`store::reserve_all`].
struct Locks;

impl Batch for Locks {
    type Item = store::LockRequest;
    type Output = Result<crate::domain::Product, crate::domain::ProductError>;
    type Error = store::StoreError;

    fn apply(
        &self,
        conn: &mut DbConnection,
        locks: &[store::LockRequest],
    ) -> Result<Vec<store::LockOutcome>, store::StoreError> {
        store::reserve_all(conn, locks)
    }

    /// On PostgreSQL a batch of locks is one statement ([`store::reserve_all`]), and a lock
    /// it refuses wrote nothing but its fence row's touch (which blocks nothing).
    fn one_statement(&self, conn: &DbConnection, _locks: &[store::LockRequest]) -> bool {
        matches!(conn, DbConnection::Postgres(_))
    }
}

#[tonic::async_trait]
impl pb::product_lock_service_server::ProductLockService for ProductLockApi {
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
        record_id("product.id", product.get());
        record_id("reservation.id", reservation.get());
        self.injected_fault().await?;
        let locked = self
            .locks
            .submit(store::LockRequest {
                product,
                reservation,
                deadline,
            })
            .await??;
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
        record_id("product.id", product.get());
        record_id("reservation.id", reservation.get());
        let current = self
            .db
            .transaction(move |conn| store::release(conn, product, reservation))
            .await?;
        Ok(Response::new(to_wire(current)))
    }
}
