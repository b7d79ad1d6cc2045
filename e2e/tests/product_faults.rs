//! reservation-svc when product-svc is down or frozen: a fast 503, and no product left locked
//! by a reservation that does not exist.

use std::time::{Duration, Instant};

use e2e::waiting::wait_until;
use e2e::{Mesh, MeshOptions, Svc};
use serde_json::json;

#[tokio::test]
async fn product_svc_down_answers_503_within_the_deadline() {
    let options = MeshOptions::default();
    let deadline = Duration::from_millis(options.lock_deadline_ms);
    let mut mesh = Mesh::start("product_down", options).await;
    let product = json!({"id": mesh.register_product("Bike").await});
    mesh.stop(Svc::Product);

    let started = Instant::now();
    let response = mesh
        .http
        .post(mesh.url("/reservation"))
        .json(&json!({"productId": product["id"]}))
        .send()
        .await
        .expect("gateway answers");
    let elapsed = started.elapsed();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let (_, error) = e2e::read(response).await;
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("try again shortly"),
        "{error}"
    );
    assert!(
        elapsed < deadline + Duration::from_millis(400),
        "took {elapsed:?}"
    );
    println!("503 with product-svc down after {elapsed:?}");

    let (_, reservations) = mesh.get("/reservations").await;
    assert_eq!(reservations, json!([]));

    // Back up: the same buyer gets the product.
    mesh.restart(Svc::Product);
    mesh.wait_ready(Duration::from_secs(20)).await;
    let (status, reservation) = mesh
        .post("/reservation", json!({"productId": product["id"]}))
        .await;
    assert_eq!(status, 201, "{reservation}");
}

/// A frozen product-svc costs a reservation its deadline (503), not a hang, and leaves no
/// product locked for good: once thawed, the product is reservable again. Whether the lock it
/// had queued lands late (then the reconciler releases it after its grace period) or not
/// depends on timing here; reservation-svc/tests/placement.rs forces the late lock and checks
/// the reconciler's release itself.
#[tokio::test]
async fn a_frozen_product_service_costs_the_deadline_and_leaves_nothing_locked() {
    let options = MeshOptions {
        lock_deadline_ms: 500,
        reconcile_grace_ms: 1500,
        reconcile_interval_ms: 200,
        ..MeshOptions::default()
    };
    let deadline = Duration::from_millis(options.lock_deadline_ms);
    let mesh = Mesh::start("product_frozen", options).await;
    let product = json!({"id": mesh.register_product("Piano").await});
    let path = format!("/product/{}", product["id"]);

    // Frozen product-svc: the request reaches its socket but nothing answers.
    mesh.pause(Svc::Product);
    let started = Instant::now();
    let (status, error) = mesh
        .post("/reservation", json!({"productId": product["id"]}))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 503, "{error}");
    assert!(
        elapsed < deadline + Duration::from_millis(400),
        "took {elapsed:?}"
    );

    let (_, reservations) = mesh.get("/reservations").await;
    assert_eq!(
        reservations,
        json!([]),
        "the failed reservation left no row"
    );

    // Thawed: a late lock may hold the product (409) until the reconciler's grace period
    // ends; then, at the latest, it can be reserved.
    mesh.resume(Svc::Product);
    let reserved = wait_until(
        "the product to be reservable again",
        Duration::from_secs(15),
        || async {
            let (status, body) = mesh
                .post("/reservation", json!({"productId": product["id"]}))
                .await;
            match status {
                201 => Some(body),
                409 | 503 => None,
                other => panic!("unexpected {other}: {body}"),
            }
        },
    )
    .await;
    let (_, current) = mesh.get(&path).await;
    assert_eq!(current["productStatus"], "PENDING", "{reserved}");
}
