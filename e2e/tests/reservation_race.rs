//! Invariant I1 under contention: 100 buyers race for one product through the gateway.

use std::sync::Arc;

use e2e::{Mesh, MeshOptions};
use serde_json::json;
use tokio::sync::Barrier;

const BUYERS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_buyers_one_winner() {
    let mesh = Arc::new(Mesh::start("race", MeshOptions::default()).await);
    let (_, product) = mesh
        .post("/product", json!({"productName": "Concert ticket"}))
        .await;
    let product_id = product["id"].as_i64().expect("product id");

    let start = Arc::new(Barrier::new(BUYERS));
    let buyers: Vec<_> = (0..BUYERS)
        .map(|buyer| {
            let mesh = Arc::clone(&mesh);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let customer = format!("buyer-{buyer}");
                let body = json!({"productId": product_id.to_string(), "customerId": customer});
                mesh.post_as(Some(&mesh.buyer(&customer)), "/reservation", body)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    let mut conflicts = 0;
    let mut others = Vec::new();
    for buyer in buyers {
        match buyer.await.expect("buyer task") {
            (201, _) => created += 1,
            (409, _) => conflicts += 1,
            other => others.push(other),
        }
    }
    println!(
        "race: {created} x 201, {conflicts} x 409, {} other",
        others.len()
    );
    assert_eq!(others, Vec::new(), "unexpected answers");
    assert_eq!((created, conflicts), (1, BUYERS - 1));

    let (_, reservations) = mesh.get("/reservations").await;
    let reservations = reservations.as_array().expect("a list").clone();
    assert_eq!(reservations.len(), 1, "{reservations:?}");
    let (_, product) = mesh.get(&format!("/product/{product_id}")).await;
    assert_eq!(product["productStatus"], "PENDING");
    assert_eq!(product["reservationId"], reservations[0]["id"]);
}
