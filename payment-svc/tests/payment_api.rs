//! payment-svc in process (port 0) against a fresh PostgreSQL database and a private NATS:
//! a payment appears from its reservation's event, only its buyer pays it, once, and the
//! reservation's cancellation refunds it; redelivered events change nothing.

use std::time::Duration;

use mesh_core::auth::Role;
use mesh_core::events::OutgoingEvent;
use mesh_core::testing::{
    InProcess, TestNats, as_user, inbox_rows, reservation_placed, service_config, wait_until,
};
use payment_svc::{App, Config};
use reserve_proto::events::v1::ReservationCancelled;
use reserve_proto::payment::v1 as pb;
use reserve_proto::payment::v1::payment_service_client::PaymentServiceClient;
use tonic::Code;
use tonic::transport::Channel;

const SOON: Duration = Duration::from_secs(10);

async fn start(label: &str) -> InProcess<PaymentServiceClient<Channel>> {
    let nats = TestNats::start();
    let config = Config {
        service: service_config(label, &nats),
    };
    serve(nats, config).await
}

async fn serve(nats: TestNats, config: Config) -> InProcess<PaymentServiceClient<Channel>> {
    let app = App::build(config).await.expect("payment-svc starts");
    let addr = app.local_addr();
    InProcess::serve(
        nats,
        addr,
        |shutdown| app.run(shutdown),
        PaymentServiceClient::new,
    )
    .await
}

/// The reservation's payments, as an admin (who sees them all).
async fn payments_of(
    client: &PaymentServiceClient<Channel>,
    reservation_id: i64,
) -> Vec<pb::Payment> {
    let request = pb::ListPaymentsRequest {
        reservation_id,
        ..Default::default()
    };
    client
        .clone()
        .list_payments(as_user(request, "ops", &[Role::Admin]))
        .await
        .expect("list payments")
        .into_inner()
        .payments
}

async fn the_payment_of(
    client: &PaymentServiceClient<Channel>,
    reservation_id: i64,
) -> pb::Payment {
    wait_until("the reservation's payment appears", SOON, || async {
        payments_of(client, reservation_id).await.into_iter().next()
    })
    .await
}

fn pay(id: i64, buyer: &str) -> tonic::Request<pb::PayRequest> {
    let request = pb::PayRequest {
        id,
        request_id: String::new(),
    };
    as_user(request, buyer, &[Role::Buyer])
}

#[tokio::test]
async fn a_reservation_event_makes_one_unpaid_payment_that_only_its_buyer_pays_once() {
    let mut svc = start("payment_flow").await;
    let event = reservation_placed(7, "kim");
    svc.nats.publish(&event).await;
    let payment = the_payment_of(&svc.client, 7).await;
    assert_eq!(payment.status(), pb::PaymentStatus::Unpaid);
    assert_eq!(payment.customer_id, "kim");

    let stranger = svc
        .client
        .pay(pay(payment.id, "lee"))
        .await
        .expect_err("not hers");
    assert_eq!(stranger.code(), Code::PermissionDenied, "{stranger:?}");

    let paid = svc
        .client
        .pay(pay(payment.id, "kim"))
        .await
        .expect("pays")
        .into_inner();
    assert_eq!(paid.status(), pb::PaymentStatus::Paid);
    let twice = svc
        .client
        .pay(pay(payment.id, "kim"))
        .await
        .expect_err("paid");
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");
    assert!(twice.message().contains("already PAID"), "{twice:?}");

    // The same placement again under a new event id (past JetStream's dedup window), then
    // another reservation's: once that one has its payment, the repeat has been consumed, and
    // it made no second payment.
    svc.nats.publish(&reservation_placed(7, "kim")).await;
    svc.nats.publish(&reservation_placed(8, "kim")).await;
    the_payment_of(&svc.client, 8).await;
    assert_eq!(payments_of(&svc.client, 7).await.len(), 1);
}

/// The consumer keeps no inbox for payment-svc: a placement delivered again (the same
/// envelope under another NATS message id) finds its reservation's payment and adds nothing.
#[tokio::test]
async fn a_redelivered_placement_makes_no_second_payment_and_needs_no_inbox() {
    let nats = TestNats::start();
    let config = Config {
        service: service_config("payment_redelivered", &nats),
    };
    let db = config.service.db.clone();
    let svc = serve(nats, config).await;
    let placement = reservation_placed(5, "kim");
    svc.nats.publish(&placement).await;
    let first = the_payment_of(&svc.client, 5).await;
    let again = OutgoingEvent {
        event_id: format!("{}-redelivered", placement.event_id),
        ..placement.clone()
    };
    svc.nats.publish(&again).await;
    // A later event: once its payment exists, the copy before it has been consumed.
    svc.nats.publish(&reservation_placed(6, "kim")).await;
    the_payment_of(&svc.client, 6).await;

    let payments = payments_of(&svc.client, 5).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0].id, first.id);
    assert_eq!(payments[0].status(), pb::PaymentStatus::Unpaid);
    assert_eq!(inbox_rows(&db), 0);
}

#[tokio::test]
async fn cancelling_a_paid_reservation_refunds_its_payment() {
    let mut svc = start("payment_refund").await;
    svc.nats.publish(&reservation_placed(9, "kim")).await;
    let payment = the_payment_of(&svc.client, 9).await;
    svc.client.pay(pay(payment.id, "kim")).await.expect("pays");
    let cancelled = ReservationCancelled {
        reservation_id: 9,
        product_id: 3,
        customer_id: "kim".into(),
    };
    svc.nats.publish(&OutgoingEvent::new(&cancelled, 2)).await;
    wait_until("the payment is refunded", SOON, || async {
        let payment = payments_of(&svc.client, 9).await.into_iter().next()?;
        (payment.status() == pb::PaymentStatus::Refunded).then_some(())
    })
    .await;
    let after = svc
        .client
        .pay(pay(payment.id, "kim"))
        .await
        .expect_err("refunded");
    assert_eq!(after.code(), Code::FailedPrecondition, "{after:?}");
}

#[tokio::test]
async fn bad_ids_are_refused_and_unknown_payments_are_not_found() {
    let mut svc = start("payment_refusals").await;
    let zero = svc.client.pay(pay(0, "kim")).await.expect_err("id 0");
    assert_eq!(zero.code(), Code::InvalidArgument, "{zero:?}");
    let missing = svc
        .client
        .pay(pay(404, "kim"))
        .await
        .expect_err("no payment");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let anonymous = svc
        .client
        .pay(tonic::Request::new(pb::PayRequest {
            id: 1,
            request_id: String::new(),
        }))
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
}
