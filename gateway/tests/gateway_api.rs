//! The gateway in process (port 0) in front of a real product-svc (in process, fresh
//! PostgreSQL database, private NATS): REST in, gRPC through, JSON out — and a clear JSON
//! error for every refusal, from the edge or from the service behind it.

use std::net::SocketAddr;
use std::time::Duration;

use gateway::upstream::UpstreamConfig;
use gateway::{App, Config};
use mesh_core::auth::Role;
use mesh_core::testing::{
    StopOnDrop, TestNats, serve_until_dropped, service_config, test_auth, test_issuer,
};
use serde_json::{Value, json};

struct Running {
    base: String,
    http: reqwest::Client,
    _gateway: StopOnDrop,
    _product: StopOnDrop,
    _nats: TestNats,
}

/// Where nothing listens: the services this test does not start.
const NOBODY: &str = "http://127.0.0.1:9";

async fn start(label: &str) -> Running {
    let nats = TestNats::start();
    let product = product_svc::App::build(product_svc::Config {
        service: service_config(label, &nats),
        internal_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        faults: Default::default(),
    })
    .await
    .expect("product-svc starts");
    let product_url = format!("http://{}", product.local_addr());
    let product_stop = serve_until_dropped(|shutdown| product.run(shutdown));
    let gateway = App::build(Config {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_in_flight: 64,
        max_streams: 4,
        upstream: UpstreamConfig {
            product_url,
            reservation_url: NOBODY.into(),
            payment_url: NOBODY.into(),
            mypage_url: NOBODY.into(),
            notice_url: NOBODY.into(),
            timeout: Duration::from_secs(2),
            refresh: mesh_core::upstream::DEFAULT_REFRESH,
            reserve_timeout: Duration::from_millis(1100),
        },
        auth: test_auth(),
        reserve_rate_per_sec: 0.0,
        reserve_rate_burst: 10,
    })
    .await
    .expect("the gateway starts");
    let base = format!("http://{}", gateway.local_addr());
    let gateway_stop = serve_until_dropped(|shutdown| gateway.run(shutdown));
    Running {
        base,
        http: reqwest::Client::new(),
        _gateway: gateway_stop,
        _product: product_stop,
        _nats: nats,
    }
}

impl Running {
    async fn send(&self, request: reqwest::RequestBuilder, token: Option<&str>) -> (u16, Value) {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("status {status}: not JSON ({err}): {text:?}"));
        (status, body)
    }

    async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
        let request = self.http.post(format!("{}{path}", self.base)).json(&body);
        self.send(request, token).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)), token)
            .await
    }
}

/// A refusal's body: a machine-readable code and a message for people.
fn assert_json_error(body: &Value) {
    let named = |field: &str| body[field].as_str().is_some_and(|text| !text.is_empty());
    assert!(named("code") && named("error"), "not a JSON error: {body}");
}

fn token(subject: &str, role: Role) -> String {
    test_issuer().mint(subject, &[role], 600)
}

#[tokio::test]
async fn a_seller_registers_a_product_that_anyone_then_reads() {
    let gw = start("gateway_products").await;
    let seller = token("lee", Role::Seller);
    let (status, product) = gw
        .post("/product", json!({"productName": "Phone"}), Some(&seller))
        .await;
    assert_eq!(status, 201, "{product}");
    let id = product["id"].as_i64().expect("an id");
    let buyer = token("kim", Role::Buyer);
    let (status, read) = gw.get(&format!("/product/{id}"), Some(&buyer)).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["productName"], "Phone");
    assert_eq!(read["productStatus"], "AVAILABLE");
}

#[tokio::test]
async fn refusals_are_json_errors_and_change_nothing() {
    let gw = start("gateway_refusals").await;
    let seller = token("lee", Role::Seller);
    let buyer = token("kim", Role::Buyer);
    let (status, body) = gw
        .post("/product", json!({"productName": "Tv"}), None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert_json_error(&body);
    let (status, body) = gw
        .post("/product", json!({"productName": "Tv"}), Some(&buyer))
        .await;
    assert_eq!(status, 403, "a buyer does not sell: {body}");
    assert_json_error(&body);
    let (status, body) = gw.post("/product", json!({"name": 3}), Some(&seller)).await;
    assert_eq!(status, 400, "{body}");
    assert_json_error(&body);
    let (status, body) = gw.get("/product/abc", Some(&buyer)).await;
    assert_eq!(status, 400, "{body}");
    assert_json_error(&body);
    let (status, body) = gw.get("/product/999", Some(&buyer)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body,
        json!({"code": "not_found", "error": "product 999 not found"})
    );
    let (status, list) = gw.get("/product", Some(&buyer)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "nothing was registered: {list}"
    );
}

#[tokio::test]
async fn a_service_that_is_down_is_a_503_that_says_to_retry() {
    let gw = start("gateway_down").await;
    let buyer = token("kim", Role::Buyer);
    let (status, body) = gw
        .post("/reservation", json!({"productId": 1}), Some(&buyer))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "try_again_shortly", "{body}");
}
