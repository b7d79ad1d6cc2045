//! Measures how long the asynchronous half of the mesh takes to reflect a change, over many
//! reservations, and prints percentiles as `key=value` lines:
//!
//! * `payment_lag`: `POST /reservation` → its payment row readable at `GET /payment?…`
//!   (reservation-svc outbox → JetStream → payment-svc consumer → its database);
//! * `mypage_lag`: `PATCH /paid` → the buyer's my page showing PAID
//!   (payment-svc outbox → JetStream → mypage-svc consumer → its database).
//!
//! ```sh
//! cargo build --release --workspace --bins
//! MESH_BIN_DIR=target/release cargo run --release -p e2e --bin event-lag -- 1000 4
//! ```
//! Arguments: reservations (default 1000), concurrent buyers (default 4). Needs PostgreSQL and
//! nats-server as `script/test` sets them up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{Mesh, MeshOptions};
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Default)]
struct Lags {
    payment: Vec<Duration>,
    mypage: Vec<Duration>,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let reservations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let buyers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4).max(1);
    let mesh = Arc::new(Mesh::start("bench_event_lag", MeshOptions::default()).await);
    for n in 0..reservations {
        mesh.register_product(&format!("bench-{n}")).await;
    }

    let next = Arc::new(Mutex::new(1..=reservations));
    let lags = Arc::new(Mutex::new(Lags::default()));
    let started = Instant::now();
    let workers: Vec<_> = (0..buyers)
        .map(|_| {
            let (mesh, next, lags) = (Arc::clone(&mesh), Arc::clone(&next), Arc::clone(&lags));
            tokio::spawn(async move {
                loop {
                    let Some(product) = next.lock().await.next() else {
                        return;
                    };
                    let (payment, mypage) = reserve_pay_and_watch(&mesh, product).await;
                    let mut lags = lags.lock().await;
                    lags.payment.push(payment);
                    lags.mypage.push(mypage);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed();
    let mut lags = lags.lock().await;
    println!("reservations={reservations}");
    println!("buyers={buyers}");
    report("payment_lag", &mut lags.payment);
    report("mypage_lag", &mut lags.mypage);
    println!(
        "flows_per_s={:.0}",
        reservations as f64 / elapsed.as_secs_f64()
    );
}

fn report(name: &str, lags: &mut [Duration]) {
    lags.sort();
    let at = |q: f64| {
        let index = ((lags.len() as f64 - 1.0) * q).round() as usize;
        lags[index].as_secs_f64() * 1000.0
    };
    println!("{name}_p50_ms={:.2}", at(0.50));
    println!("{name}_p90_ms={:.2}", at(0.90));
    println!("{name}_p99_ms={:.2}", at(0.99));
    println!("{name}_max_ms={:.2}", at(1.0));
}

/// Reserves `product` for its own buyer, waits for the payment, pays it, and waits for my page
/// to show it paid; returns (payment lag, my-page lag).
async fn reserve_pay_and_watch(mesh: &Mesh, product: usize) -> (Duration, Duration) {
    let customer = format!("bench-buyer-{product}");
    let sent = Instant::now();
    let product = i64::try_from(product).expect("a product id");
    let (status, reservation) = mesh.reserve_as_buyer(product, &customer).await;
    assert_eq!(status, 201, "reserving product {product}: {reservation}");
    let payments = poll(
        mesh,
        &format!("/payment?reservationId={}", reservation["id"]),
        |list| list.as_array().is_some_and(|l| !l.is_empty()),
    )
    .await;
    let payment_lag = sent.elapsed();

    let paid_at = Instant::now();
    let (status, paid) = mesh
        .patch(
            "/paid",
            json!({ "id": payments[0]["id"], "paymentStatus": "02" }),
        )
        .await;
    assert_eq!(status, 200, "paying: {paid}");
    poll(mesh, &format!("/mypage?customerId={customer}"), |rows| {
        rows[0]["paymentStatus"] == "PAID"
    })
    .await;
    (payment_lag, paid_at.elapsed())
}

async fn poll(mesh: &Mesh, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = mesh.get(path).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out on {path}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
