//! The original's fault scenario, shortened: product-svc made slow on purpose. Reserving must
//! answer fast — 503 "try again shortly" within the deadline, then at once while the circuit is
//! open — never anything else, and recover within seconds once product-svc is healthy again.

use std::time::{Duration, Instant};

use e2e::waiting::wait_until;
use e2e::{Mesh, MeshOptions, Svc};
use reserve_proto::product::v1::ReserveFaults;
use serde_json::json;

const DEADLINE_MS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_product_service_trips_the_breaker_fails_fast_and_recovers() {
    let options = MeshOptions {
        lock_deadline_ms: DEADLINE_MS,
        extra_env: vec![
            (
                Svc::Reservation,
                "PRODUCT_LOCK_BREAKER_FAILURES".into(),
                "3".into(),
            ),
            (
                Svc::Reservation,
                "PRODUCT_LOCK_BREAKER_OPEN_MS".into(),
                "500".into(),
            ),
        ],
        ..MeshOptions::default()
    };
    let mesh = Mesh::start("overload_breaker", options).await;
    for n in 0..30 {
        mesh.register_product(&format!("item-{n}")).await;
    }
    mesh.set_reserve_faults(ReserveFaults {
        latency_min_ms: 600,
        latency_max_ms: 600,
        error_rate: 0.0,
    })
    .await;

    // Slow product-svc: every reservation is a fast 503, and once the breaker is open, an
    // immediate one.
    let mut latencies = Vec::new();
    for product in 1..=10 {
        let started = Instant::now();
        let (status, body) = mesh
            .post("/reservation", json!({"productId": product}))
            .await;
        latencies.push(started.elapsed());
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "try_again_shortly");
    }
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        // Well under the injected 600 ms: nobody waits for the slow product-svc. (The tight
        // deadline + 100 ms bound is a benchmark figure, script/bench fault, not a timed test.)
        slowest < Duration::from_millis(DEADLINE_MS + 250),
        "no answer may wait for the slow product service: {latencies:?}"
    );
    let immediate = latencies
        .iter()
        .filter(|l| **l < Duration::from_millis(100))
        .count();
    assert!(
        immediate >= 4,
        "the open circuit must answer at once: {latencies:?}"
    );

    // Healthy again: reservations succeed within seconds.
    mesh.set_reserve_faults(ReserveFaults::default()).await;
    let healed = Instant::now();
    let mut product = 11;
    loop {
        let (status, body) = mesh
            .post("/reservation", json!({"productId": product}))
            .await;
        match status {
            201 => break,
            503 => product += 1,
            other => panic!("unexpected {other}: {body}"),
        }
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "no recovery within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("recovered in {:?}", healed.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_sheds_requests_past_its_in_flight_bound() {
    let options = MeshOptions {
        extra_env: vec![(Svc::Gateway, "GATEWAY_MAX_IN_FLIGHT".into(), "1".into())],
        ..MeshOptions::default()
    };
    let mesh = std::sync::Arc::new(Mesh::start("overload_gateway", options).await);
    mesh.register_product("Phone").await;

    // A frozen product-svc holds one reservation in flight until the lock deadline.
    mesh.pause(Svc::Product);
    let holder = {
        let mesh = std::sync::Arc::clone(&mesh);
        tokio::spawn(async move { mesh.post("/reservation", json!({"productId": 1})).await })
    };
    wait_until(
        "the held reservation to occupy the gateway's one slot",
        Duration::from_secs(5),
        || async {
            let in_flight = mesh
                .metric(Svc::Gateway, "http_server_requests_in_flight")
                .await;
            (in_flight >= Some(1.0)).then_some(())
        },
    )
    .await;
    let started = Instant::now();
    let (status, body) = mesh.get("/products").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "try_again_shortly");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "shed at once, not held by the frozen product-svc"
    );
    // Probes are outside the bound.
    let (status, _) = mesh.get("/healthz").await;
    assert_eq!(status, 200);

    let (status, _) = holder.await.expect("holder");
    assert_eq!(status, 503, "the held reservation hit its deadline");
    mesh.resume(Svc::Product);
}
