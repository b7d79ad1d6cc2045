//! reservation-svc when product-svc is down or frozen: a fast 503, and no product left locked
//! by a reservation that does not exist.

use std::time::{Duration, Instant};

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

#[tokio::test]
async fn a_lock_that_lands_after_the_deadline_is_released_by_the_reconciler() {
    let options = MeshOptions {
        lock_deadline_ms: 500,
        reconcile_grace_ms: 1500,
        reconcile_interval_ms: 200,
        ..MeshOptions::default()
    };
    let deadline = Duration::from_millis(options.lock_deadline_ms);
    let settled_after =
        Duration::from_millis(options.reconcile_grace_ms + 2 * options.reconcile_interval_ms + 500);
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
    // Thawed, product-svc may now apply the lock it had queued: a lock with no reservation.
    // Whether it lands or not, once the grace period has passed it must be gone for good.
    mesh.resume(Svc::Product);
    tokio::time::sleep(settled_after).await;

    let released_by = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, current) = mesh.get(&path).await;
        if current["productStatus"] == "AVAILABLE" {
            break;
        }
        assert!(Instant::now() < released_by, "still locked: {current}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, reservations) = mesh.get("/reservations").await;
    assert_eq!(reservations, json!([]));
    let (status, _) = mesh
        .post("/reservation", json!({"productId": product["id"]}))
        .await;
    assert_eq!(status, 201);
}
