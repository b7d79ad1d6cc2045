//! mypage-svc in process (port 0) against a fresh PostgreSQL database and a private NATS:
//! entries follow reservation and payment events whatever their order, a watcher hears each
//! change, and each buyer sees only their own page.

use std::time::Duration;

use mesh_core::auth::Role;
use mesh_core::events::OutgoingEvent;
use mesh_core::testing::{
    InProcess, TestNats, as_user, inbox_rows, reservation_placed, service_config, wait_until,
};
use mypage_svc::{App, Config};
use reserve_proto::events::v1::{PaymentRequested, ReservationCancelled};
use reserve_proto::mypage::v1 as pb;
use reserve_proto::mypage::v1::my_page_service_client::MyPageServiceClient;
use reserve_proto::payment::v1::PaymentStatus;
use reserve_proto::reservation::v1::ReservationStatus;
use tonic::Code;
use tonic::transport::Channel;

const SOON: Duration = Duration::from_secs(10);

async fn start(label: &str) -> InProcess<MyPageServiceClient<Channel>> {
    let nats = TestNats::start();
    let config = config(label, &nats);
    serve(nats, config).await
}

fn config(label: &str, nats: &TestNats) -> Config {
    Config {
        service: service_config(label, nats),
        max_watchers: 4,
    }
}

async fn serve(nats: TestNats, config: Config) -> InProcess<MyPageServiceClient<Channel>> {
    let app = App::build(config).await.expect("mypage-svc starts");
    let addr = app.local_addr();
    InProcess::serve(
        nats,
        addr,
        |shutdown| app.run(shutdown),
        MyPageServiceClient::new,
    )
    .await
}

fn cancelled(reservation_id: i64, customer: &str) -> OutgoingEvent {
    let event = ReservationCancelled {
        reservation_id,
        product_id: 3,
        customer_id: customer.into(),
    };
    OutgoingEvent::new(&event, 2)
}

fn requested(payment_id: i64, reservation_id: i64, customer: &str) -> OutgoingEvent {
    let event = PaymentRequested {
        payment_id,
        reservation_id,
        product_id: 3,
        customer_id: customer.into(),
    };
    OutgoingEvent::new(&event, 1)
}

async fn entry(
    client: &MyPageServiceClient<Channel>,
    reservation_id: i64,
    buyer: &str,
) -> Result<pb::MyPageEntry, tonic::Status> {
    let request = pb::GetMyPageEntryRequest { reservation_id };
    client
        .clone()
        .get_my_page_entry(as_user(request, buyer, &[Role::Buyer]))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_late_event_never_overwrites_a_newer_one_and_halves_fill_in() {
    let svc = start("mypage_order").await;
    // The cancellation (version 2) arrives before the placement (version 1) it follows.
    svc.nats.publish(&cancelled(5, "kim")).await;
    svc.nats.publish(&reservation_placed(5, "kim")).await;
    svc.nats.publish(&requested(11, 5, "kim")).await;
    let shown = wait_until(
        "both halves and the product's name are shown",
        SOON,
        || async {
            let shown = entry(&svc.client, 5, "kim").await.ok()?;
            (shown.payment_id == 11 && !shown.product_name.is_empty()).then_some(shown)
        },
    )
    .await;
    assert_eq!(shown.reservation_status(), ReservationStatus::Cancelled);
    assert_eq!(shown.reservation_version, 2);
    assert_eq!(shown.payment_status(), PaymentStatus::Unpaid);
    assert_eq!(
        (shown.product_id, shown.product_name.as_str()),
        (3, "Coffee")
    );
}

#[tokio::test]
async fn a_watcher_hears_its_own_changes_only() {
    let svc = start("mypage_watch").await;
    let mut stream = watch(&svc.client, "kim").await;
    svc.nats.publish(&reservation_placed(1, "park")).await;
    svc.nats.publish(&reservation_placed(2, "kim")).await;
    let heard = next_heard(&mut stream).await;
    assert_eq!(
        (heard.reservation_id, heard.customer_id.as_str()),
        (2, "kim")
    );
    assert_eq!(heard.reservation_status(), ReservationStatus::Reserved);
}

/// `buyer`'s live stream of changes to their page.
async fn watch(
    client: &MyPageServiceClient<Channel>,
    buyer: &str,
) -> tonic::Streaming<pb::MyPageEntry> {
    let request = pb::WatchMyPageRequest::default();
    client
        .clone()
        .watch_my_page(as_user(request, buyer, &[Role::Buyer]))
        .await
        .expect("watch")
        .into_inner()
}

/// The next change a watcher hears.
async fn next_heard(stream: &mut tonic::Streaming<pb::MyPageEntry>) -> pb::MyPageEntry {
    tokio::time::timeout(SOON, stream.message())
        .await
        .expect("a change within the limit")
        .expect("the stream stays open")
        .expect("an entry")
}

/// My page keeps no inbox: an entry takes a half only when its version is newer, so a
/// redelivered event changes nothing, and watchers hear of it no second time.
#[tokio::test]
async fn a_redelivered_event_changes_nothing_is_announced_once_and_needs_no_inbox() {
    let nats = TestNats::start();
    let config = config("mypage_redelivered", &nats);
    let db = config.service.db.clone();
    let svc = serve(nats, config).await;
    let mut stream = watch(&svc.client, "kim").await;
    let placement = reservation_placed(2, "kim");
    svc.nats.publish(&placement).await;
    // The same envelope under another NATS message id, as a redelivery brings it.
    let again = OutgoingEvent {
        event_id: format!("{}-redelivered", placement.event_id),
        ..placement.clone()
    };
    svc.nats.publish(&again).await;
    svc.nats.publish(&cancelled(2, "kim")).await;

    let first = next_heard(&mut stream).await;
    assert_eq!(first.reservation_status(), ReservationStatus::Reserved);
    // The copy is not announced: the next change heard is the cancellation.
    let second = next_heard(&mut stream).await;
    assert_eq!(second.reservation_status(), ReservationStatus::Cancelled);
    assert_eq!(second.reservation_version, 2);

    assert_eq!(inbox_rows(&db), 0);
}

#[tokio::test]
async fn each_buyer_reads_only_their_page_and_bad_ids_are_refused() {
    let svc = start("mypage_access").await;
    svc.nats.publish(&reservation_placed(4, "kim")).await;
    wait_until("kim's entry is shown", SOON, || async {
        entry(&svc.client, 4, "kim").await.ok()
    })
    .await;
    let other = entry(&svc.client, 4, "park").await.expect_err("not park's");
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
    let zero = entry(&svc.client, 0, "kim").await.expect_err("id 0");
    assert_eq!(zero.code(), Code::InvalidArgument, "{zero:?}");
    let missing = entry(&svc.client, 404, "kim").await.expect_err("no entry");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(missing.message(), "my page has no reservation 404");

    let request = pb::ListMyPageRequest {
        customer_id: "kim".into(),
        ..Default::default()
    };
    let someone_elses = svc
        .client
        .clone()
        .list_my_page(as_user(request, "park", &[Role::Buyer]))
        .await
        .expect_err("kim's page is not park's");
    assert_eq!(someone_elses.code(), Code::PermissionDenied);
    let own = svc
        .client
        .clone()
        .list_my_page(as_user(
            pb::ListMyPageRequest::default(),
            "kim",
            &[Role::Buyer],
        ))
        .await
        .expect("own page")
        .into_inner();
    assert_eq!(own.entries.len(), 1);
}
