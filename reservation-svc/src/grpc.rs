//! The tonic service: maps protobuf requests to placement and store calls, and errors to
//! statuses. No business rule lives here.

use std::sync::Arc;

use mesh_core::Db;
use mesh_core::auth::grpc::caller;
use mesh_core::auth::{Caller, caller::reserving_customer};
use mesh_core::outbox::OutboxSignal;
use mesh_core::paging::PageRequest;
use mesh_core::request_log::{self, Answer, RequestKey};
use mesh_core::rpc_observability::record_id;
use prost::Message as _;
use reserve_proto::reservation::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::cancellation;
use crate::domain::{CustomerId, Id, Reservation, ReservationError};
use crate::placement::Placement;
use crate::store;

/// The `reserve.reservation.v1.ReservationService` implementation.
#[derive(Clone)]
pub struct ReservationApi {
    db: Db,
    /// Shared: each placement runs in a task of its own, and cloning the placement itself
    /// would clone its lock client's channels and service stack for every request.
    placement: Arc<Placement>,
    outbox: OutboxSignal,
}

impl ReservationApi {
    /// A service over `db`, placing through `placement`, waking the relay with `outbox`.
    pub fn new(db: Db, placement: Placement, outbox: OutboxSignal) -> Self {
        Self {
            db,
            placement: Arc::new(placement),
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
        let caller = caller(&request)?;
        let answer_by = mesh_core::grpc_deadline::deadline_of(request.metadata());
        let request = request.into_inner();
        let product = Id::parse(request.product_id, "product id")?;
        let customer = CustomerId::parse(&reserving_customer(&caller, &request.customer_id)?)?;
        let key = request_key(&caller, &request.request_id)?;
        record_id("product.id", product.get());
        // Placing runs to its end even if the caller goes away (its deadline passed, it
        // disconnected): a half-placed reservation would hold its product until the
        // reconciler's grace period ends, and with an idempotency key the caller's retry
        // finds the outcome instead.
        let placement = Arc::clone(&self.placement);
        let placing = tokio::spawn(
            async move { placement.place(product, customer, key, answer_by).await }
                .instrument(tracing::Span::current()),
        );
        let placed = placing.await.map_err(|err| {
            tracing::error!(%err, "placing a reservation failed");
            Status::internal("placing the reservation failed")
        })??;
        let answer = wire_answer(placed)?;
        record_id("reservation.id", answer.id);
        Ok(Response::new(answer))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let caller = caller(&request)?;
        let id = Id::parse(request.into_inner().id, "reservation id")?;
        let reservation = self.db.run(move |conn| store::find(conn, id)).await?;
        caller.require_reader(
            &reservation.customer_id,
            &reservation.seller_id,
            &format!("reservation {id}"),
        )?;
        Ok(Response::new(to_wire(reservation)))
    }

    async fn cancel_reservation(
        &self,
        request: Request<pb::CancelReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = Id::parse(request.id, "reservation id")?;
        let key = request_key(&caller, &request.request_id)?;
        record_id("reservation.id", id.get());
        let answer = cancellation::cancel(&self.db, &self.outbox, caller, id, key).await?;
        Ok(Response::new(wire_answer(answer)?))
    }

    async fn list_reservations(
        &self,
        request: Request<pb::ListReservationsRequest>,
    ) -> Result<Response<pb::ListReservationsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let scope = format!("reservations:{}", caller.visibility());
        let page = PageRequest::parse(request.page_size, &request.page_token, &scope)?;
        let rows = self
            .db
            .run(move |conn| store::list_visible_to(conn, &caller, page.after, page.probe_limit()))
            .await?;
        let (reservations, next_page_token) = page.finish(rows, &scope, |r| r.id.get());
        Ok(Response::new(pb::ListReservationsResponse {
            reservations: reservations.into_iter().map(to_wire).collect(),
            next_page_token,
        }))
    }
}

/// The request's idempotency key, if it has one, in the caller's own namespace, recording
/// answers as the client gets them.
fn request_key(caller: &Caller, raw: &str) -> Result<Option<RequestKey<Reservation>>, Status> {
    Ok(request_log::parse_key(raw)?.map(|key| RequestKey {
        key: request_log::scoped_key(caller.subject(), key),
        encode: |reservation: &Reservation| to_wire(reservation.clone()).encode_to_vec(),
    }))
}

/// The answer on the wire: made now, or recorded by the first request with the same key.
fn wire_answer(answer: Answer<Reservation>) -> Result<pb::Reservation, Status> {
    match answer {
        Answer::Now(reservation) => Ok(to_wire(reservation)),
        Answer::Before(recorded) => pb::Reservation::decode(recorded.as_slice()).map_err(|err| {
            tracing::error!(%err, "recorded answer does not decode");
            Status::internal("recorded answer is corrupt")
        }),
    }
}

fn to_wire(reservation: Reservation) -> pb::Reservation {
    // Intents are filtered out by the store; never shown as a status.
    let status = reservation
        .state
        .to_wire()
        .unwrap_or(pb::ReservationStatus::Unspecified);
    pb::Reservation {
        id: reservation.id.get(),
        product_id: reservation.product_id.get(),
        status: status.into(),
        customer_id: reservation.customer_id,
        seller_id: reservation.seller_id,
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
