//! Measures the event backbone's lag: from `POST /reservation` to its payment row being
//! readable through `GET /payment?reservationId=N` (reservation-svc outbox → JetStream →
//! payment-svc consumer → payment-svc database), over many reservations, and prints the
//! percentiles as `key=value` lines.
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
use serde_json::json;
use tokio::sync::Mutex;

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
    let lags = Arc::new(Mutex::new(Vec::with_capacity(reservations)));
    let started = Instant::now();
    let workers: Vec<_> = (0..buyers)
        .map(|_| {
            let (mesh, next, lags) = (Arc::clone(&mesh), Arc::clone(&next), Arc::clone(&lags));
            tokio::spawn(async move {
                loop {
                    let Some(product) = next.lock().await.next() else {
                        return;
                    };
                    let lag = reserve_and_wait_for_payment(&mesh, product).await;
                    lags.lock().await.push(lag);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed();
    let mut lags = lags.lock().await.clone();
    lags.sort();
    let at = |q: f64| {
        let index = ((lags.len() as f64 - 1.0) * q).round() as usize;
        lags[index].as_secs_f64() * 1000.0
    };
    println!("event_lag_reservations={}", lags.len());
    println!("event_lag_buyers={buyers}");
    println!("event_lag_p50_ms={:.2}", at(0.50));
    println!("event_lag_p90_ms={:.2}", at(0.90));
    println!("event_lag_p99_ms={:.2}", at(0.99));
    println!("event_lag_max_ms={:.2}", at(1.0));
    println!(
        "event_lag_throughput_per_s={:.0}",
        lags.len() as f64 / elapsed.as_secs_f64()
    );
}

/// Reserves `product`, then polls until its payment exists; returns the time from sending the
/// reservation to seeing the payment.
async fn reserve_and_wait_for_payment(mesh: &Mesh, product: usize) -> Duration {
    let sent = Instant::now();
    let (status, reservation) = mesh
        .post("/reservation", json!({ "productId": product }))
        .await;
    assert_eq!(status, 201, "reserving product {product}: {reservation}");
    let path = format!("/payment?reservationId={}", reservation["id"]);
    loop {
        let (_, payments) = mesh.get(&path).await;
        if payments.as_array().is_some_and(|list| !list.is_empty()) {
            return sent.elapsed();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "no payment for {path}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
