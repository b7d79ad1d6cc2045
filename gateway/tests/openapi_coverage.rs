//! The OpenAPI document and the router cannot drift apart: every documented operation is
//! served (not answered 404 / 405 by the router), and every route is registered from a
//! documented handler (no plain `.route(` in the router's source).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use gateway::rate_limit::RateLimiter;
use gateway::routes::{Guards, build};
use gateway::upstream::{UpstreamConfig, Upstreams};
use mesh_core::auth::{AuthConfig, Authenticator};
use tower::ServiceExt;

fn unreachable_upstreams() -> Upstreams {
    let url = "http://127.0.0.1:9".to_owned();
    Upstreams::connect(&UpstreamConfig {
        product_url: url.clone(),
        reservation_url: url.clone(),
        payment_url: url.clone(),
        mypage_url: url.clone(),
        notice_url: url,
        timeout: Duration::from_millis(200),
        refresh: mesh_core::upstream::DEFAULT_REFRESH,
        reserve_timeout: Duration::from_millis(1100),
    })
    .expect("upstream clients")
}

fn guards() -> Guards {
    Guards {
        authenticator: Arc::new(Authenticator::new(&AuthConfig::dev(None))),
        reservation_limiter: Arc::new(RateLimiter::new(0.0, 1)),
        max_in_flight: 16,
        max_streams: 4,
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let (router, openapi) = build(unreachable_upstreams(), guards());
    let mut operations = 0;
    for (path, item) in &openapi.paths.paths {
        let concrete = path.replace("{id}", "1");
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PATCH", item.patch.is_some()),
            ("PUT", item.put.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (method, documented) in methods {
            if !documented {
                continue;
            }
            operations += 1;
            let request = http::Request::builder()
                .method(method)
                .uri(&concrete)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .expect("a request");
            let response = router.clone().oneshot(request).await.expect("an answer");
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("no_such_route") && !text.contains("method_not_allowed"),
                "{method} {path} is documented but not routed: {status} {text}"
            );
        }
    }
    assert!(operations >= 22, "only {operations} operations documented");
}

#[test]
fn every_route_is_registered_from_a_documented_handler() {
    let source = include_str!("../src/routes/mod.rs");
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or_default();
        assert!(
            !code.contains(".route(")
                && !code.contains(".route_service(")
                && !code.contains(".nest("),
            "a route registered around the OpenAPI document: {line}"
        );
    }
    assert!(source.contains("routes!("), "routes come from routes!");
}

/// Every link of the document lands on the answer it starts from, naming an operation that
/// exists, with its request body (runtime expressions) when it has one.
#[tokio::test]
async fn every_link_lands_on_its_answer_and_names_an_operation() {
    let (_, openapi) = build(unreachable_upstreams(), guards());
    let document: serde_json::Value =
        serde_json::from_str(&openapi.to_json().expect("json")).expect("a JSON document");
    let operations: Vec<&str> = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| {
            item.as_object()
                .into_iter()
                .flat_map(|methods| methods.values())
        })
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let mut links = std::collections::BTreeMap::new();
    for item in document["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("methods").values() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for response in responses.values() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links.insert(name.clone(), link.clone());
                }
            }
        }
    }
    let names: Vec<&str> = links.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "CancelIt",
            "GetProduct",
            "GetReservation",
            "ItsPayment",
            "NextPage",
            "PayIt",
            "ReserveIt"
        ]
    );
    for (name, link) in &links {
        let target = link["operationId"].as_str().expect("an operationId");
        assert!(
            operations.contains(&target),
            "{name} names {target}, not an operation"
        );
    }
    assert_eq!(links["CancelIt"]["requestBody"]["reservationStatus"], "02");
    assert_eq!(
        links["ReserveIt"]["requestBody"]["productId"],
        "$response.body#/id"
    );
}
