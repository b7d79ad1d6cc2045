//! The mesh scaled out: 3 product-svc, 2 reservation-svc, 2 payment-svc, 2 mypage-svc and
//! 2 notice-svc on one PostgreSQL database per service and one NATS, all running at once.
//!
//! First, with every replica up: the gateway's and reservation-svc's calls spread over the
//! replicas (each product-svc replica serves a fair share of the lock calls), and a buyer
//! watching their page on one mypage-svc replica hears every change, including those the
//! other replica applied. Then buyers reserve, pay and cancel while the last replica of each
//! service is killed with SIGKILL and left dead, and every invariant of the chaos run must
//! hold afterwards: every event's effect happened exactly once, nothing was lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::chaos::{self, ChaosConfig, Faults, Target};
use e2e::{Mesh, Svc};
use reserve_proto::mypage::v1 as pb;
use reserve_proto::mypage::v1::my_page_service_client::MyPageServiceClient;
use reserve_proto::payment::v1::PaymentStatus;
use tokio_stream::StreamExt;

/// Reservations the watched buyer makes and pays in the first part: enough that a replica
/// drawn a fair third of the lock calls falls under a fifth by chance about once in 2,000 runs.
const WATCHED_RESERVATIONS: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_the_load_and_losing_one_of_each_loses_nothing() {
    let options = chaos::mesh_options()
        .with_replicas(Svc::Product, 3)
        .with_replicas(Svc::Reservation, 2)
        .with_replicas(Svc::Payment, 2)
        .with_replicas(Svc::MyPage, 2)
        .with_replicas(Svc::Notice, 2);
    let mut mesh = Mesh::start("replicas", options).await;

    let seen = watch_on_first_mypage_replica(&mesh, "watched").await;
    let reservations = reserve_and_pay(&mesh, "watched").await;
    lock_calls_are_shared(&mesh).await;
    the_watcher_heard_every_change(&mesh, &seen, &reservations).await;

    let config = ChaosConfig {
        seconds: 24,
        seed: 20261130,
        buyers: 12,
        products: 500,
        db_outage: Duration::ZERO,
        converge_limit: Duration::from_secs(120),
        kill_every: 1000..2000,
    };
    let report = chaos::run_on(&mut mesh, &config, Faults::OneReplicaOfEach).await;
    let lines = report.lines().join("\n");
    println!("{lines}");
    for svc in Svc::GRPC {
        assert_eq!(
            report.kills.get(&Target::Process(svc)).copied(),
            Some(1),
            "one replica of {} killed:\n{lines}",
            svc.binary()
        );
    }
    assert!(report.client_2xx > 0, "no client succeeded:\n{lines}");
    assert!(report.violations.is_empty(), "{lines}");
}

/// Opens `customer`'s watch stream on mypage-svc replica 0 directly (not through the
/// gateway, which may pick either) and collects every entry it sends.
async fn watch_on_first_mypage_replica(
    mesh: &Mesh,
    customer: &str,
) -> Arc<Mutex<Vec<pb::MyPageEntry>>> {
    let url = format!("http://{}", mesh.replica_addr((Svc::MyPage, 0)));
    let mut client = MyPageServiceClient::connect(url)
        .await
        .expect("mypage-svc replica 0");
    let authorization = format!("Bearer {}", mesh.buyer(customer));
    let request = mesh_core::auth::grpc::on_behalf_of(
        pb::WatchMyPageRequest {
            customer_id: customer.to_owned(),
        },
        Some(&authorization),
    );
    let mut stream = client
        .watch_my_page(request)
        .await
        .expect("a watch stream")
        .into_inner();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let collected = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(Ok(entry)) = stream.next().await {
            collected.lock().expect("not poisoned").push(entry);
        }
    });
    seen
}

/// `customer` reserves a fresh product each time and pays for it; returns the reservations.
async fn reserve_and_pay(mesh: &Mesh, customer: &str) -> Vec<i64> {
    let mut reservations = Vec::new();
    for i in 0..WATCHED_RESERVATIONS {
        let product = mesh.register_product(&format!("Scaled item {i}")).await;
        let (status, reservation) = mesh.reserve_as_buyer(product, customer).await;
        assert_eq!(status, 201, "reserving {product}: {reservation}");
        reservations.push(reservation["id"].as_i64().expect("a reservation id"));
    }
    for reservation in &reservations {
        let payment = mesh.payment_of(*reservation, Duration::from_secs(30)).await;
        mesh.pay(payment).await;
    }
    reservations
}

/// Each product-svc replica served at least a fifth of the `ReserveProduct` calls.
async fn lock_calls_are_shared(mesh: &Mesh) {
    let mut served = Vec::new();
    for replica in 0..mesh.replicas(Svc::Product) {
        let calls = mesh
            .replica_metric_sum(
                (Svc::Product, replica),
                "grpc_server_handled_total",
                &["grpc_method=\"ReserveProduct\""],
            )
            .await;
        served.push(calls);
    }
    let total: f64 = served.iter().sum();
    println!("lock calls served by each product-svc replica: {served:?} of {total}");
    assert!(
        total >= WATCHED_RESERVATIONS as f64,
        "every reservation locked: {served:?}"
    );
    for (replica, calls) in served.iter().enumerate() {
        assert!(
            *calls >= total * 0.2,
            "product-svc replica {replica} served {calls} of {total} lock calls: {served:?}"
        );
    }
}

/// The watcher on replica 0 saw every reservation paid, and replica 1 applied part of the
/// payment events (so some of the changes the watcher saw came from the other replica).
async fn the_watcher_heard_every_change(
    mesh: &Mesh,
    seen: &Arc<Mutex<Vec<pb::MyPageEntry>>>,
    reservations: &[i64],
) {
    let paid = PaymentStatus::Paid as i32;
    let unseen = || -> Vec<i64> {
        let seen = seen.lock().expect("not poisoned");
        reservations
            .iter()
            .copied()
            .filter(|id| {
                !seen
                    .iter()
                    .any(|entry| entry.reservation_id == *id && entry.payment_status == paid)
            })
            .collect()
    };
    e2e::waiting::wait_until(
        "the watcher on mypage-svc replica 0 sees every reservation paid",
        Duration::from_secs(30),
        || async { unseen().is_empty().then_some(()) },
    )
    .await;
    let mut applied = Vec::new();
    for replica in 0..mesh.replicas(Svc::MyPage) {
        // The payment events: the last change of each entry the watcher waited for.
        let events = mesh
            .replica_metric_sum(
                (Svc::MyPage, replica),
                "consumer_events_total",
                &["consumer=\"mypage-svc-payments\"", "outcome=\"applied\""],
            )
            .await;
        applied.push(events);
    }
    println!("events applied by each mypage-svc replica: {applied:?}");
    assert!(
        applied.iter().all(|events| *events > 0.0),
        "both mypage-svc replicas applied payment events: {applied:?}"
    );
}
