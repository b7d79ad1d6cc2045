//! notice-svc in process (port 0) against a fresh PostgreSQL database and a private NATS: one
//! notification per status change, in the configured language, delivered once; a sink that
//! keeps failing ends FAILED with its reason; each buyer lists only their own.

use std::time::Duration;

use mesh_core::auth::Role;
use mesh_core::events::OutgoingEvent;
use mesh_core::testing::{
    InProcess, TestNats, as_user, reservation_placed, service_config, wait_until,
};
use notice_svc::signature::WebhookSecret;
use notice_svc::sink::{Sink, Webhook};
use notice_svc::templates::Lang;
use notice_svc::{App, Config};
use reserve_proto::events::v1::PaymentCompleted;
use reserve_proto::notice::v1 as pb;
use reserve_proto::notice::v1::notice_service_client::NoticeServiceClient;
use tonic::Code;
use tonic::transport::Channel;

const SOON: Duration = Duration::from_secs(10);

async fn start(label: &str, lang: Lang, sink: Sink) -> InProcess<NoticeServiceClient<Channel>> {
    let nats = TestNats::start();
    let config = Config {
        service: service_config(label, &nats),
        lang,
        sink,
        max_attempts: 2,
    };
    let app = App::build(config).await.expect("notice-svc starts");
    let addr = app.local_addr();
    InProcess::serve(
        nats,
        addr,
        |shutdown| app.run(shutdown),
        NoticeServiceClient::new,
    )
    .await
}

async fn notices_of(client: &NoticeServiceClient<Channel>, buyer: &str) -> Vec<pb::Notice> {
    client
        .clone()
        .list_notices(as_user(
            pb::ListNoticesRequest::default(),
            buyer,
            &[Role::Buyer],
        ))
        .await
        .expect("list notices")
        .into_inner()
        .notices
}

/// Waits until `buyer` has `count` notifications, all settled (none PENDING).
async fn settled(
    client: &NoticeServiceClient<Channel>,
    buyer: &str,
    count: usize,
) -> Vec<pb::Notice> {
    wait_until("the notifications are settled", SOON, || async {
        let notices = notices_of(client, buyer).await;
        let done = notices.len() == count && notices.iter().all(|n| n.delivery != "PENDING");
        done.then_some(notices)
    })
    .await
}

#[tokio::test]
async fn each_status_change_is_one_notification_delivered_in_the_buyers_language() {
    let svc = start("notice_flow", Lang::Ko, Sink::Log).await;
    let placement = reservation_placed(6, "kim");
    svc.nats.publish(&placement).await;
    let paid = PaymentCompleted {
        payment_id: 2,
        reservation_id: 6,
        product_id: 3,
        customer_id: "kim".into(),
    };
    svc.nats.publish(&OutgoingEvent::new(&paid, 2)).await;
    svc.nats.publish(&reservation_placed(7, "park")).await;

    let notices = settled(&svc.client, "kim", 2).await;
    // Newest first. The two events travel on different subjects (different consumers), so
    // either may be recorded first.
    assert!(notices[0].id > notices[1].id, "newest first: {notices:?}");
    let mut types: Vec<&str> = notices.iter().map(|n| n.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["PaymentCompleted", "ReservationPlaced"]);
    assert!(
        notices
            .iter()
            .all(|n| n.delivery == "SENT" && n.attempts == 1)
    );
    let placed = notices
        .iter()
        .find(|n| n.event_type == "ReservationPlaced")
        .expect("the placement's notice");
    assert_eq!(placed.event_id, placement.event_id);
    assert!(
        placed.message.contains("Coffee 예약(6번)"),
        "{}",
        placed.message
    );
    assert_eq!(settled(&svc.client, "park", 1).await.len(), 1);
}

#[tokio::test]
async fn a_sink_that_keeps_failing_ends_failed_with_its_reason() {
    let secret = WebhookSecret::parse("a-test-secret-of-enough-length-0123456789").expect("secret");
    let unreachable = Webhook::new(
        "http://127.0.0.1:9/hook".into(),
        secret,
        Duration::from_millis(200),
    )
    .expect("webhook");
    let svc = start("notice_failing", Lang::En, Sink::Webhook(unreachable)).await;
    svc.nats.publish(&reservation_placed(8, "kim")).await;
    let notices = settled(&svc.client, "kim", 1).await;
    assert_eq!(notices[0].delivery, "FAILED");
    assert_eq!(notices[0].attempts, 2);
    assert!(
        notices[0].last_error.starts_with("webhook unreachable"),
        "{:?}",
        notices[0].last_error
    );
    assert!(
        !notices[0].last_error.contains("127.0.0.1"),
        "the URL is a credential"
    );
}

#[tokio::test]
async fn a_buyer_cannot_list_someone_elses_notifications() {
    let svc = start("notice_access", Lang::En, Sink::Log).await;
    let request = pb::ListNoticesRequest {
        customer_id: "kim".into(),
        ..Default::default()
    };
    let denied = svc
        .client
        .clone()
        .list_notices(as_user(request, "park", &[Role::Buyer]))
        .await
        .expect_err("not park's");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let bad_page = pb::ListNoticesRequest {
        page_token: "not-a-token".into(),
        ..Default::default()
    };
    let refused = svc
        .client
        .clone()
        .list_notices(as_user(bad_page, "kim", &[Role::Buyer]))
        .await
        .expect_err("forged page token");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
}

#[tokio::test]
async fn an_event_delivered_again_adds_no_second_notification() {
    let svc = start("notice_redelivered", Lang::En, Sink::Log).await;
    let placement = reservation_placed(11, "yoon");
    svc.nats.publish(&placement).await;
    settled(&svc.client, "yoon", 1).await;
    // The same event again, as a redelivery brings it: the same envelope (and event id) under
    // another NATS message id, so JetStream's own deduplication lets it through.
    let again = OutgoingEvent {
        event_id: format!("{}-redelivered", placement.event_id),
        ..placement.clone()
    };
    svc.nats.publish(&again).await;
    // A later event: once its notification is settled, the copy before it has been consumed.
    svc.nats.publish(&reservation_placed(12, "yoon")).await;
    let notices = settled(&svc.client, "yoon", 2).await;
    let of_first: Vec<_> = notices
        .iter()
        .filter(|notice| notice.event_id == placement.event_id)
        .collect();
    assert_eq!(of_first.len(), 1, "{notices:?}");
}
