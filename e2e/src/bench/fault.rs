//! `mesh-bench fault`: the original's fault scenario (see the module above).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reserve_proto::product::v1::ReserveFaults;
use serde_json::json;

use super::buyers::{USERS, buyers, percentile, slowest_ms};
use super::{bench_options, number, register_products, seconds};
use crate::{Mesh, MeshOptions};

/// Runs the scenario and prints its figures.
pub async fn run() {
    let run_for = seconds("FAULT_SECONDS", 60);
    // The original protected the same call with a 610 ms Hystrix timeout.
    let deadline_ms = number("FAULT_LOCK_DEADLINE_MS", 610);
    // The harness gives the gateway RESERVE_TIMEOUT_MS = the lock deadline + 100 ms: every
    // answer is due that long after the request reached the gateway.
    let answer_ms = deadline_ms + 100;
    let options = MeshOptions {
        lock_deadline_ms: deadline_ms,
        ..bench_options()
    };
    let mesh = Arc::new(Mesh::start("bench_fault", options).await);
    let products = 20_000;
    eprintln!("registering {products} products…");
    register_products(&mesh, products).await;
    mesh.set_reserve_faults(ReserveFaults {
        latency_min_ms: 400,
        latency_max_ms: 620,
        error_rate: 0.0,
    })
    .await;
    eprintln!("product-svc slowed to 400-620 ms; {USERS} buyers for {run_for:?}…");
    let mut tally = buyers(&mesh, products / 2, run_for, 0).await;

    mesh.set_reserve_faults(ReserveFaults::default()).await;
    let healed = Instant::now();
    let mut product = products / 2 + 1;
    let recovery = loop {
        let (status, _) = mesh
            .post("/reservation", json!({"productId": product}))
            .await;
        if status == 201 {
            break healed.elapsed();
        }
        if status != 503 {
            tally.other += 1;
        }
        product += 1;
        if healed.elapsed() > Duration::from_secs(60) {
            break healed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tally.latencies.sort();
    println!("lock_deadline_ms={deadline_ms}");
    println!("reserve_timeout_ms={answer_ms}");
    println!("ok={}", tally.created + tally.conflicts);
    println!("fast_fail_503={}", tally.unavailable);
    println!("other_errors={}", tally.other);
    println!("p50_ms={:.1}", percentile(&tally.latencies, 0.50));
    println!("max_latency_ms={:.1}", slowest_ms(&tally.latencies));
    println!("recovery_s={:.2}", recovery.as_secs_f64());
}
