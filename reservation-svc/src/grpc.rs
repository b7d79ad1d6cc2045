//! The tonic service: maps protobuf requests to placement and store calls, and errors to
//! statuses. No business rule lives here.

use mesh_core::Db;
use mesh_core::outbox::OutboxSignal;
use mesh_core::rpc_observability::{IdKind, record_id};
use reserve_proto::reservation::v1 as pb;
use tonic::{Request, Response, Status};

use crate::cancellation;
use crate::domain::{CustomerId, Id, Reservation, ReservationError, ReservationState};
use crate::placement::Placement;
use crate::store::{self, StoreError};

/// The `reserve.reservation.v1.ReservationService` implementation.
#[derive(Clone)]
pub struct ReservationApi {
    db: Db,
    placement: Placement,
    outbox: OutboxSignal,
}

impl ReservationApi {
    /// A service over `db`, placing through `placement`, waking the relay with `outbox`.
    pub fn new(db: Db, placement: Placement, outbox: OutboxSignal) -> Self {
        Self {
            db,
            placement,
            outbox,
        }
    }
}

#[tonic::async_trait]
impl pb::reservation_service_server::ReservationService for ReservationApi {
    async fn create_reservation(
        &self,
        request: Request<pb::CreateReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let request = request.into_inner();
        let product = Id::parse(request.product_id, "product id")?;
        let customer = CustomerId::parse(&request.customer_id)?;
        record_id(IdKind::Product, product.get());
        let reservation = self.placement.place(product, customer).await?;
        record_id(IdKind::Reservation, reservation.id.get());
        Ok(Response::new(to_wire(reservation)))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let id = Id::parse(request.into_inner().id, "reservation id")?;
        let reservation = self.db.run(move |conn| store::find(conn, id)).await?;
        Ok(Response::new(to_wire(reservation)))
    }

    async fn cancel_reservation(
        &self,
        request: Request<pb::CancelReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let id = Id::parse(request.into_inner().id, "reservation id")?;
        record_id(IdKind::Reservation, id.get());
        let cancelled = cancellation::cancel(&self.db, &self.outbox, id).await?;
        Ok(Response::new(to_wire(cancelled)))
    }

    async fn list_reservations(
        &self,
        _request: Request<pb::ListReservationsRequest>,
    ) -> Result<Response<pb::ListReservationsResponse>, Status> {
        let reservations = self.db.run(store::list).await?;
        Ok(Response::new(pb::ListReservationsResponse {
            reservations: reservations.into_iter().map(to_wire).collect(),
        }))
    }
}

fn to_wire(reservation: Reservation) -> pb::Reservation {
    let status = match reservation.state {
        ReservationState::Reserved => pb::ReservationStatus::Reserved,
        ReservationState::Cancelled => pb::ReservationStatus::Cancelled,
        ReservationState::Confirmed => pb::ReservationStatus::Confirmed,
        // Intents are filtered out by the store; never shown as a status.
        ReservationState::Placing | ReservationState::Abandoned => {
            pb::ReservationStatus::Unspecified
        }
    };
    pb::Reservation {
        id: reservation.id.get(),
        product_id: reservation.product_id.get(),
        status: status.into(),
        customer_id: reservation.customer_id,
    }
}

impl From<ReservationError> for Status {
    fn from(err: ReservationError) -> Self {
        let message = err.to_string();
        match err {
            ReservationError::InvalidId(_)
            | ReservationError::InvalidCustomer(_)
            | ReservationError::ProductRejected(_) => Status::invalid_argument(message),
            ReservationError::NotFound(_) | ReservationError::ProductNotFound(_) => {
                Status::not_found(message)
            }
            ReservationError::ProductNotAvailable(_) | ReservationError::IllegalTransition(_) => {
                Status::failed_precondition(message)
            }
            ReservationError::TryAgainShortly(_) => Status::unavailable(message),
        }
    }
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Domain(err) => err.into(),
            StoreError::Db(err) => err.into_status("reservation"),
            StoreError::Corrupt { .. } => {
                tracing::error!(%err, "corrupt reservation row");
                Status::internal("reservation record is corrupt")
            }
        }
    }
}
