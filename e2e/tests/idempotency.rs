//! A retried request is not a new request (invariant I7): `Idempotency-Key` on the three
//! routes that change something, through the real gateway and services.

use mesh_core::auth::Role;
use std::time::Duration;

use e2e::{Mesh, MeshOptions, Svc};
use serde_json::{Value, json};

const SOON: Duration = Duration::from_secs(20);

async fn send(
    mesh: &Mesh,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Value,
) -> (u16, Value) {
    // Every request here is buyer kim's own.
    let response = mesh
        .http
        .request(method, mesh.url(path))
        .bearer_auth(mesh.token("kim", &[Role::Buyer]))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("gateway answers");
    e2e::read(response).await
}

#[tokio::test]
async fn a_reservation_retried_after_its_call_timed_out_past_the_commit_gets_the_first_201() {
    // The gateway gives up on reservation-svc after 300 ms; product-svc takes 700 ms to lock,
    // within reservation-svc's 2 s deadline: the reservation commits after the buyer saw 503.
    let options = MeshOptions {
        lock_deadline_ms: 2000,
        extra_env: vec![
            (Svc::Gateway, "UPSTREAM_TIMEOUT_MS".into(), "300".into()),
            (
                Svc::Product,
                "FAULT_RESERVE_LATENCY_MS".into(),
                "700".into(),
            ),
        ],
        ..MeshOptions::default()
    };
    let mesh = Mesh::start("idempotent_reserve", options).await;
    let product = mesh.register_product("Phone").await;
    let body = json!({"productId": product, "customerId": "kim"});

    let (status, first) = send(
        &mesh,
        reqwest::Method::POST,
        "/reservation",
        "buy-1",
        body.clone(),
    )
    .await;
    assert_eq!(
        status, 503,
        "the first call times out at the gateway: {first}"
    );
    // The reservation committed anyway.
    let reservations = mesh
        .eventually("/reservations", SOON, |list| {
            list.as_array().is_some_and(|list| list.len() == 1)
        })
        .await;
    let placed = reservations[0].clone();

    // The retry waits for the answer (the lock still takes 700 ms, but nothing new is locked).
    let (status, retried) = send(
        &mesh,
        reqwest::Method::POST,
        "/reservation",
        "buy-1",
        body.clone(),
    )
    .await;
    assert_eq!(
        status, 201,
        "the retry gets the first answer, not 409: {retried}"
    );
    assert_eq!(retried, placed);
    let (status, again) = send(&mesh, reqwest::Method::POST, "/reservation", "buy-1", body).await;
    assert_eq!((status, again), (201, placed.clone()));

    // The same key for another request is refused and changes nothing.
    let other = mesh.register_product("Tv").await;
    let (status, error) = send(
        &mesh,
        reqwest::Method::POST,
        "/reservation",
        "buy-1",
        json!({"productId": other, "customerId": "kim"}),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["code"], "idempotency_key_reused");
    let (_, products) = mesh.get(&format!("/product/{other}")).await;
    assert_eq!(products["productStatus"], "AVAILABLE");
}

#[tokio::test]
async fn a_retried_payment_and_cancellation_get_their_first_answers() {
    let mesh = Mesh::start("idempotent_pay_cancel", MeshOptions::default()).await;
    let product = mesh.register_product("Phone").await;
    let reservation = mesh.reserve(product, "kim").await;
    let payment = mesh.payment_of(reservation, SOON).await;

    let pay = json!({"id": payment, "paymentStatus": "02"});
    let (status, paid) = send(&mesh, reqwest::Method::PATCH, "/paid", "pay-1", pay.clone()).await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["paymentStatus"], "PAID");
    let (status, replayed) =
        send(&mesh, reqwest::Method::PATCH, "/paid", "pay-1", pay.clone()).await;
    assert_eq!(
        (status, replayed),
        (200, paid.clone()),
        "not 409 'already PAID'"
    );
    let (status, _) = mesh.patch("/paid", pay).await;
    assert_eq!(status, 409, "without the key, paying twice is refused");

    let cancel = json!({"id": reservation, "reservationStatus": "02"});
    let (status, cancelled) = send(
        &mesh,
        reqwest::Method::PATCH,
        "/reservationupdate",
        "cancel-1",
        cancel.clone(),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["reservationStatus"], "CANCELLED");
    let (status, replayed) = send(
        &mesh,
        reqwest::Method::PATCH,
        "/reservationupdate",
        "cancel-1",
        cancel,
    )
    .await;
    assert_eq!((status, replayed), (200, cancelled));

    // The first answer stays the answer, even after the payment was refunded since.
    mesh.eventually(&format!("/payment/{payment}"), SOON, |body| {
        body["paymentStatus"] == "REFUNDED"
    })
    .await;
    let (status, replayed) = send(
        &mesh,
        reqwest::Method::PATCH,
        "/paid",
        "pay-1",
        json!({"id": payment, "paymentStatus": "02"}),
    )
    .await;
    assert_eq!((status, replayed), (200, paid));
}

#[tokio::test]
async fn malformed_idempotency_keys_are_refused_and_change_nothing() {
    let mesh = Mesh::start("idempotency_bad_key", MeshOptions::default()).await;
    let product = mesh.register_product("Phone").await;
    for key in ["", &"k".repeat(256)] {
        let (status, error) = send(
            &mesh,
            reqwest::Method::POST,
            "/reservation",
            key,
            json!({"productId": product}),
        )
        .await;
        assert_eq!(status, 400, "{key:?}: {error}");
        assert!(
            error["error"]
                .as_str()
                .unwrap_or_default()
                .contains("Idempotency-Key"),
            "{error}"
        );
    }
    let (_, reservations) = mesh.get("/reservations").await;
    assert_eq!(reservations, json!([]));
}
