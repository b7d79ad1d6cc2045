//! The asynchronous half of the flow (DESIGN.md section 1, steps 4-8) through the gateway with
//! the original routes, on a real NATS JetStream and real PostgreSQL databases.

use std::time::Duration;

use e2e::{Mesh, MeshOptions, field_is};
use serde_json::{Value, json};

const SOON: Duration = Duration::from_secs(15);

fn one_payment_with(expected: &'static str) -> impl Fn(&Value) -> bool {
    move |body| {
        body.as_array()
            .is_some_and(|list| list.len() == 1 && list[0]["paymentStatus"] == expected)
    }
}

#[tokio::test]
async fn the_original_commands_run_the_whole_flow() {
    whole_flow(Mesh::start("whole_flow", MeshOptions::default()).await).await;
}

/// The one-command local run keeps every service's data in an embedded SQLite file.
#[tokio::test]
async fn the_whole_flow_runs_on_the_embedded_sqlite_default_too() {
    let options = MeshOptions {
        sqlite: true,
        ..MeshOptions::default()
    };
    let mesh = Mesh::start("whole_flow_sqlite", options).await;
    whole_flow(mesh).await;
}

async fn whole_flow(mesh: Mesh) {
    for name in ["Phone", "Tv", "Coffee"] {
        let (status, _) = mesh
            .post(
                "/product",
                json!({"productName": name, "productStatus": "01"}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, _) = mesh
        .post(
            "/reservation",
            json!({"productId": "3", "reservationStatus": "01"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = mesh
        .post(
            "/reservation",
            json!({"productId": "2", "reservationStatus": "01"}),
        )
        .await;
    assert_eq!(status, 201);

    // Step 4: each reservation gets an UNPAID payment from its event, in order.
    mesh.eventually("/payment?reservationId=1", SOON, one_payment_with("UNPAID"))
        .await;
    mesh.eventually("/payment?reservationId=2", SOON, one_payment_with("UNPAID"))
        .await;
    let (_, first) = mesh.get("/payment/1").await;
    assert_eq!(
        (first["reservationId"].as_i64(), first["productId"].as_i64()),
        (Some(1), Some(3))
    );

    // Step 5: pay (verbatim body of the original).
    let (status, paid) = mesh
        .patch(
            "/paid",
            json!({"id": "1", "reservationId": "1", "productId": "3", "paymentStatus": "02"}),
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["paymentStatus"], "PAID");

    // Step 6: product SOLD_OUT and reservation CONFIRMED from PaymentCompleted.
    mesh.eventually("/product/3", SOON, field_is("productStatus", "SOLD_OUT"))
        .await;
    mesh.eventually(
        "/reservation/1",
        SOON,
        field_is("reservationStatus", "CONFIRMED"),
    )
    .await;

    // Step 7: cancel reservation 2 (the original names productId=1; the id decides).
    let (status, cancelled) = mesh
        .patch(
            "/reservationupdate",
            json!({"id": "2", "productId": "1", "reservationStatus": "02"}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["reservationStatus"], "CANCELLED");
    assert_eq!(cancelled["productId"], 2);

    // Step 8: product 2 AVAILABLE again, payment 2 VOIDED; product 1 untouched.
    mesh.eventually("/product/2", SOON, field_is("productStatus", "AVAILABLE"))
        .await;
    mesh.eventually("/payment?reservationId=2", SOON, one_payment_with("VOIDED"))
        .await;
    let (_, product1) = mesh.get("/product/1").await;
    assert_eq!(product1["productStatus"], "AVAILABLE");
}

#[tokio::test]
async fn illegal_payments_and_cancellations_are_refused() {
    let mesh = Mesh::start("illegal_transitions", MeshOptions::default()).await;
    mesh.post("/product", json!({"productName": "Phone"})).await;
    mesh.post("/product", json!({"productName": "Tv"})).await;
    mesh.post("/reservation", json!({"productId": 1})).await;
    mesh.post("/reservation", json!({"productId": 2})).await;
    mesh.eventually("/payments", SOON, |body| {
        body.as_array().is_some_and(|l| l.len() == 2)
    })
    .await;

    let pay = |id: i64| json!({"id": id, "paymentStatus": "02"});
    let (status, _) = mesh.patch("/paid", pay(1)).await;
    assert_eq!(status, 200);
    let (status, twice) = mesh.patch("/paid", pay(1)).await;
    assert_eq!(status, 409, "{twice}");
    assert!(
        twice["error"]
            .as_str()
            .unwrap_or_default()
            .contains("already PAID"),
        "{twice}"
    );

    // Cancelling reservation 2 voids its payment; paying it then is refused.
    let cancel = |id: i64| json!({"id": id, "reservationStatus": "02"});
    let (status, _) = mesh.patch("/reservationupdate", cancel(2)).await;
    assert_eq!(status, 200);
    let (status, again) = mesh.patch("/reservationupdate", cancel(2)).await;
    assert_eq!(status, 409, "{again}");
    mesh.eventually("/payment/2", SOON, field_is("paymentStatus", "VOIDED"))
        .await;
    let (status, voided) = mesh.patch("/paid", pay(2)).await;
    assert_eq!(status, 409, "{voided}");

    // A paid reservation cancelled: payment REFUNDED, product AVAILABLE again.
    mesh.eventually("/product/1", SOON, field_is("productStatus", "SOLD_OUT"))
        .await;
    let (status, _) = mesh.patch("/reservationupdate", cancel(1)).await;
    assert_eq!(status, 200);
    mesh.eventually("/payment/1", SOON, field_is("paymentStatus", "REFUNDED"))
        .await;
    mesh.eventually("/product/1", SOON, field_is("productStatus", "AVAILABLE"))
        .await;

    // Bad input: wrong status codes, unknown ids, malformed ids.
    for (path, body, expected) in [
        ("/paid", json!({"id": 1, "paymentStatus": "01"}), 400),
        ("/paid", json!({"id": 99, "paymentStatus": "02"}), 404),
        ("/paid", json!({"id": "x", "paymentStatus": "02"}), 400),
        ("/paid", json!({"paymentStatus": "02"}), 400),
        (
            "/reservationupdate",
            json!({"id": 1, "reservationStatus": "01"}),
            400,
        ),
        (
            "/reservationupdate",
            json!({"id": 99, "reservationStatus": "02"}),
            404,
        ),
    ] {
        let (status, error) = mesh.patch(path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body}: {error}");
        assert!(error["error"].is_string(), "{error}");
    }
    let (status, _) = mesh.get("/payment?reservationId=abc").await;
    assert_eq!(status, 400);
}
