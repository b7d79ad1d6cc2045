//! The tonic service: maps protobuf requests to payment calls and errors to statuses.

use mesh_core::Db;
use mesh_core::auth::grpc::caller;
use mesh_core::outbox::OutboxSignal;
use mesh_core::paging::PageRequest;
use mesh_core::request_log::{self, Answer, RequestKey};
use mesh_core::rpc_observability::record_id;
use prost::Message as _;
use reserve_proto::payment::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::{Id, Payment, PaymentError};
use crate::pay::pay;
use crate::store;

/// The `reserve.payment.v1.PaymentService` implementation.
#[derive(Clone)]
pub struct PaymentApi {
    db: Db,
    outbox: OutboxSignal,
}

impl PaymentApi {
    /// A service over `db`, waking the relay with `outbox`.
    pub fn new(db: Db, outbox: OutboxSignal) -> Self {
        Self { db, outbox }
    }
}

#[tonic::async_trait]
impl pb::payment_service_server::PaymentService for PaymentApi {
    async fn pay(&self, request: Request<pb::PayRequest>) -> Result<Response<pb::Payment>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let id = Id::parse(request.id, "payment id")?;
        let key = request_log::parse_key(&request.request_id)?.map(|key| RequestKey {
            key: request_log::scoped_key(caller.subject(), key),
            encode: |payment: &Payment| to_wire(payment.clone()).encode_to_vec(),
        });
        record_id("payment.id", id.get());
        let answer = match pay(&self.db, &self.outbox, caller, id, key).await? {
            Answer::Now(paid) => to_wire(paid),
            // The first call's answer, recorded when it paid.
            Answer::Before(recorded) => {
                pb::Payment::decode(recorded.as_slice()).map_err(|err| {
                    tracing::error!(%err, "recorded answer does not decode");
                    Status::internal("recorded answer is corrupt")
                })?
            }
        };
        record_id("reservation.id", answer.reservation_id);
        Ok(Response::new(answer))
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let caller = caller(&request)?;
        let id = Id::parse(request.into_inner().id, "payment id")?;
        let payment = self.db.run(move |conn| store::find(conn, id)).await?;
        caller.require_reader(
            &payment.customer_id,
            &payment.seller_id,
            &format!("payment {id}"),
        )?;
        Ok(Response::new(to_wire(payment)))
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let reservation = match request.reservation_id {
            0 => None,
            raw => Some(Id::parse(raw, "reservation id")?),
        };
        let scope = format!(
            "payments:{}:{}",
            caller.visibility(),
            request.reservation_id
        );
        let page = PageRequest::parse(request.page_size, &request.page_token, &scope)?;
        let rows = self
            .db
            .run(move |conn| {
                store::list_visible_to(conn, &caller, reservation, page.after, page.probe_limit())
            })
            .await?;
        let (payments, next_page_token) = page.finish(rows, &scope, |p| p.id.get());
        Ok(Response::new(pb::ListPaymentsResponse {
            payments: payments.into_iter().map(to_wire).collect(),
            next_page_token,
        }))
    }
}

fn to_wire(payment: Payment) -> pb::Payment {
    let status = payment.status.to_wire();
    pb::Payment {
        id: payment.id.get(),
        reservation_id: payment.reservation_id.get(),
        product_id: payment.product_id.get(),
        status: status.into(),
        customer_id: payment.customer_id,
        seller_id: payment.seller_id,
    }
}

impl From<PaymentError> for Status {
    fn from(err: PaymentError) -> Self {
        let message = err.to_string();
        match err {
            PaymentError::InvalidId(_) => Status::invalid_argument(message),
            PaymentError::NotFound(_) => Status::not_found(message),
            PaymentError::IllegalTransition(_) => Status::failed_precondition(message),
        }
    }
}
