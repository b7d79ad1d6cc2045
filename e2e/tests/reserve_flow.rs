//! Reserving through the gateway, as a REST client of the original API would.

use e2e::{Mesh, MeshOptions};
use serde_json::json;

#[tokio::test]
async fn the_original_commands_register_and_reserve() {
    // Dev mode, as under script/server: the original commands carry no token and act as
    // the built-in `anonymous` buyer and seller.
    let options = MeshOptions {
        dev_auth: true,
        ..MeshOptions::default()
    };
    let mesh = Mesh::start("original_commands", options).await;
    // httpie's `key=value` sends every value as a JSON string, exactly like this.
    for name in ["Phone", "Tv", "Coffee"] {
        let (status, product) = mesh
            .post(
                "/product",
                json!({"productName": name, "productStatus": "01"}),
            )
            .await;
        assert_eq!(status, 201, "{product}");
        assert_eq!(product["productStatus"], "AVAILABLE");
    }
    let (status, first) = mesh
        .post(
            "/reservation",
            json!({"productId": "3", "reservationStatus": "01"}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        first,
        json!({"id": 1, "productId": 3, "reservationStatus": "RESERVED", "customerId": "anonymous"})
    );
    let (status, second) = mesh
        .post(
            "/reservation",
            json!({"productId": "2", "reservationStatus": "01"}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["id"], 2);

    let (_, products) = mesh.get("/products").await;
    let statuses: Vec<_> = products
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| (p["id"].as_i64(), p["productStatus"].as_str()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (Some(1), Some("AVAILABLE")),
            (Some(2), Some("PENDING")),
            (Some(3), Some("PENDING")),
        ]
    );
    let (status, reservation) = mesh.get("/reservation/1").await;
    assert_eq!((status, reservation["productId"].as_i64()), (200, Some(3)));
}

#[tokio::test]
async fn a_reserved_product_cannot_be_reserved_again() {
    let mesh = Mesh::start("reserve_twice", MeshOptions::default()).await;
    let (_, product) = mesh.post("/product", json!({"productName": "Lamp"})).await;
    let id = product["id"].clone();
    let (status, _) = mesh
        .post_as(
            Some(&mesh.buyer("kim")),
            "/reservation",
            json!({"productId": id, "customerId": "kim"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, product) = mesh.get(&format!("/product/{id}")).await;
    assert_eq!(
        (status, product["productStatus"].as_str()),
        (200, Some("PENDING"))
    );

    let (status, refusal) = mesh
        .post_as(
            Some(&mesh.buyer("lee")),
            "/reservation",
            json!({"productId": id, "customerId": "lee"}),
        )
        .await;
    assert_eq!(status, 409, "{refusal}");
    assert_eq!(refusal["code"], "conflict");
    assert!(
        refusal["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not available")
    );
    let (_, reservations) = mesh.get("/reservations").await;
    assert_eq!(
        reservations.as_array().map(Vec::len),
        Some(1),
        "{reservations}"
    );
    assert_eq!(reservations[0]["customerId"], "kim");
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_error_and_changes_nothing() {
    let mesh = Mesh::start("bad_input", MeshOptions::default()).await;
    let (_, product) = mesh.post("/product", json!({"productName": "Desk"})).await;
    assert_eq!(product["id"], 1);

    let cases = [
        ("/product", json!({"productName": ""}), 400),
        (
            "/product",
            json!({"productName": "Desk", "productStatus": "soldOut"}),
            400,
        ),
        (
            "/product",
            json!({"productName": "Desk", "productStatus": "07"}),
            400,
        ),
        ("/product", json!({"productName": 5}), 400),
        ("/product", json!({}), 400),
        ("/reservation", json!({"productId": "abc"}), 400),
        ("/reservation", json!({"productId": 0}), 400),
        (
            "/reservation",
            json!({"productId": 1, "reservationStatus": "02"}),
            400,
        ),
        ("/reservation", json!({"productId": 99}), 404),
    ];
    for (path, body, expected) in cases {
        let (status, error) = mesh.post(path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body} -> {error}");
        assert!(
            error["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
        assert!(error["code"].is_string(), "{error}");
    }

    // Not JSON at all, an empty body, and an oversized body.
    for (body, expected) in [
        ("{\"productName\": ".to_owned(), 400),
        (String::new(), 400),
        (
            format!("{{\"productName\": \"{}\"}}", "x".repeat(64 * 1024)),
            413,
        ),
    ] {
        let response = mesh
            .http
            .post(mesh.url("/product"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("gateway answers");
        let (status, error) = e2e::read(response).await;
        assert_eq!(status, expected, "{error}");
        assert!(error["error"].is_string(), "{error}");
    }

    for (path, expected) in [
        ("/product/abc", 400),
        ("/product/42", 404),
        ("/reservation/7", 404),
        ("/nowhere", 404),
    ] {
        let (status, error) = mesh.get(path).await;
        assert_eq!(status, expected, "{path}: {error}");
        assert!(error["error"].is_string(), "{error}");
    }

    // Nothing above changed anything.
    let (_, products) = mesh.get("/products").await;
    assert_eq!(
        products,
        json!([{"id": 1, "productName": "Desk", "productStatus": "AVAILABLE"}])
    );
    let (_, reservations) = mesh.get("/reservations").await;
    assert_eq!(reservations, json!([]));
}

#[tokio::test]
async fn health_probes_answer() {
    let mesh = Mesh::start("health", MeshOptions::default()).await;
    for path in ["/healthz", "/readyz", "/actuator/health"] {
        let (status, body) = mesh.get(path).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("UP")),
            "{path}"
        );
    }
}
