//! Invariants I3 and I4 with real processes: payments are taken while reservation-svc and
//! product-svc are down, and a NATS restart mid-flow loses nothing.

use std::time::Duration;

use e2e::{Mesh, MeshOptions, Svc, field_is};
use serde_json::json;

const SOON: Duration = Duration::from_secs(20);

#[tokio::test]
async fn payment_works_while_reservation_and_product_services_are_down() {
    let mut mesh = Mesh::start("payment_isolation", MeshOptions::default()).await;
    mesh.post("/product", json!({"productName": "Phone"})).await;
    let (status, _) = mesh.post("/reservation", json!({"productId": 1})).await;
    assert_eq!(status, 201);
    mesh.eventually("/payment/1", SOON, field_is("paymentStatus", "UNPAID"))
        .await;

    mesh.stop(Svc::Reservation);
    mesh.stop(Svc::Product);
    let paid = mesh.pay(1).await;
    assert_eq!(paid["paymentStatus"], "PAID");

    mesh.restart(Svc::Reservation);
    mesh.restart(Svc::Product);
    mesh.wait_ready(SOON).await;
    mesh.eventually("/product/1", SOON, field_is("productStatus", "SOLD_OUT"))
        .await;
    mesh.eventually(
        "/reservation/1",
        SOON,
        field_is("reservationStatus", "CONFIRMED"),
    )
    .await;
}

#[tokio::test]
async fn a_nats_restart_mid_flow_loses_nothing() {
    let mut mesh = Mesh::start("nats_restart", MeshOptions::default()).await;
    for name in ["A", "B", "C", "D", "E", "F"] {
        mesh.post("/product", json!({"productName": name})).await;
    }
    for product in 1..=3 {
        let (status, _) = mesh
            .post("/reservation", json!({"productId": product}))
            .await;
        assert_eq!(status, 201);
    }
    mesh.eventually("/payments", SOON, |list| {
        list.as_array().is_some_and(|l| l.len() == 3)
    })
    .await;

    // NATS goes away: the synchronous path still works; events wait in the outboxes.
    mesh.nats.stop();
    for product in 4..=6 {
        let (status, body) = mesh
            .post("/reservation", json!({"productId": product}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    mesh.pay(1).await;
    mesh.cancel(2).await;

    mesh.nats.restart();
    // Every change made during the outage reaches every consumer, exactly once.
    let payments = mesh
        .eventually("/payments", SOON, |list| {
            list.as_array().is_some_and(|l| l.len() == 6)
        })
        .await;
    let reservation_ids: Vec<_> = payments
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["reservationId"].as_i64())
        .collect();
    assert_eq!(reservation_ids, (1..=6).map(Some).collect::<Vec<_>>());
    mesh.eventually("/product/1", SOON, field_is("productStatus", "SOLD_OUT"))
        .await;
    mesh.eventually(
        "/reservation/1",
        SOON,
        field_is("reservationStatus", "CONFIRMED"),
    )
    .await;
    mesh.eventually("/product/2", SOON, field_is("productStatus", "AVAILABLE"))
        .await;
    mesh.eventually("/payment?reservationId=2", SOON, |list| {
        list[0]["paymentStatus"] == "VOIDED"
    })
    .await;
}
