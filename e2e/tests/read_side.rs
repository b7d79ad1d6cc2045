//! The read side: my page (CQRS read model, live over SSE, rebuildable) and notifications
//! (one per status change, through a webhook that fails at first), with real processes.
//!
//! Long (over 400 lines) because each read model is exercised through real processes with its
//! whole setup in view; the shared steps are the harness's (`e2e::Mesh`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use e2e::{Mesh, MeshOptions, Svc};
use serde_json::{Value, json};
use tokio_stream::StreamExt;

const SOON: Duration = Duration::from_secs(20);

/// Reserves products 1 and 2 for kim and lee, pays kim's, cancels lee's; waits until the
/// sources have settled.
async fn run_flow(mesh: &Mesh) {
    mesh.register_product("Phone").await;
    mesh.register_product("Tv").await;
    for (product, customer) in [(1, "kim"), (2, "lee")] {
        let (status, body) = mesh
            .post_as(
                Some(&mesh.buyer(customer)),
                "/reservation",
                json!({"productId": product, "customerId": customer}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    mesh.eventually("/payments", SOON, |l| {
        l.as_array().is_some_and(|l| l.len() == 2)
    })
    .await;
    mesh.pay(1).await;
    mesh.cancel(2).await;
    mesh.eventually("/reservation/1", SOON, |r| {
        r["reservationStatus"] == "CONFIRMED"
    })
    .await;
    mesh.eventually("/payment/2", SOON, |p| p["paymentStatus"] == "VOIDED")
        .await;
}

/// What my page should show, computed from the source services.
async fn expected_rows(mesh: &Mesh) -> Vec<Value> {
    let (_, reservations) = mesh.get("/reservations").await;
    let (_, products) = mesh.get("/products").await;
    let (_, payments) = mesh.get("/payments").await;
    let mut rows = Vec::new();
    for reservation in reservations.as_array().expect("list") {
        let product = products
            .as_array()
            .and_then(|l| l.iter().find(|p| p["id"] == reservation["productId"]))
            .expect("product");
        let payment = payments
            .as_array()
            .and_then(|l| l.iter().find(|p| p["reservationId"] == reservation["id"]))
            .expect("payment");
        rows.push(json!({
            "reservationId": reservation["id"],
            "productId": reservation["productId"],
            "productName": product["productName"],
            "customerId": reservation["customerId"],
            "reservationStatus": reservation["reservationStatus"],
            "paymentId": payment["id"],
            "paymentStatus": payment["paymentStatus"],
        }));
    }
    rows
}

/// My-page rows without their timestamps, for comparing.
fn comparable(rows: &Value) -> Vec<Value> {
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let mut row = row.clone();
            if let Some(object) = row.as_object_mut() {
                object.remove("updatedAt");
                object.remove("id");
            }
            row
        })
        .collect()
}

#[tokio::test]
async fn my_page_matches_the_source_services_and_rebuilds_identically() {
    let mut mesh = Mesh::start("mypage_rows", MeshOptions::default()).await;
    run_flow(&mesh).await;
    let expected = expected_rows(&mesh).await;
    let live = mesh
        .eventually("/myPages", SOON, |rows| comparable(rows) == expected)
        .await;

    let (status, kims) = mesh.get("/mypage?customerId=kim").await;
    assert_eq!(status, 200);
    assert_eq!(comparable(&kims), vec![expected[0].clone()]);
    assert_eq!(kims[0]["reservationStatus"], "CONFIRMED");
    assert_eq!(kims[0]["paymentStatus"], "PAID");
    let (_, page) = mesh.get("/mypage?pageSize=1").await;
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    let (status, error) = mesh.get("/mypage?pageSize=9999").await;
    assert_eq!(status, 400, "{error}");

    // The read model is disposable: rebuilt from the streams, it is the same.
    mesh.stop(Svc::MyPage);
    let report = mesh.run_command(Svc::MyPage, &["rebuild"]);
    assert!(report.contains("rebuilt my page"), "{report}");
    mesh.restart(Svc::MyPage);
    mesh.wait_ready(SOON).await;
    let (_, rebuilt) = mesh.get("/myPages").await;
    assert_eq!(comparable(&rebuilt), comparable(&live));
}

#[tokio::test]
async fn an_sse_client_sees_reserved_then_confirmed_live() {
    let mesh = Mesh::start("mypage_sse", MeshOptions::default()).await;
    mesh.register_product("Phone").await;
    let response = mesh
        .http
        .get(mesh.url("/mypage/stream?customerId=kim"))
        .bearer_auth(mesh.buyer("kim"))
        .send()
        .await
        .expect("stream opens");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    );
    let mut body = response.bytes_stream();

    let (status, _) = mesh
        .post_as(
            Some(&mesh.buyer("kim")),
            "/reservation",
            json!({"productId": 1, "customerId": "kim"}),
        )
        .await;
    assert_eq!(status, 201);
    mesh.eventually("/payment/1", SOON, |p| p["paymentStatus"] == "UNPAID")
        .await;
    mesh.pay(1).await;

    let mut seen = Vec::new();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + SOON;
    while !seen.contains(&"CONFIRMED".to_owned()) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no CONFIRMED within {SOON:?}; saw {seen:?}"))
            .expect("stream open")
            .expect("chunk");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data:")) {
                let row: Value = serde_json::from_str(data.trim()).expect("JSON data");
                assert_eq!(row["customerId"], "kim");
                if let Some(status) = row["reservationStatus"].as_str()
                    && seen.last().map(String::as_str) != Some(status)
                {
                    seen.push(status.to_owned());
                }
            }
        }
    }
    let reserved = seen
        .iter()
        .position(|s| s == "RESERVED")
        .expect("saw RESERVED");
    let confirmed = seen
        .iter()
        .position(|s| s == "CONFIRMED")
        .expect("saw CONFIRMED");
    assert!(reserved < confirmed, "{seen:?}");

    // Naming nobody watches the caller's own page: kim's stream starts with her row.
    let own = mesh
        .bare_http
        .get(mesh.url("/mypage/stream"))
        .bearer_auth(mesh.buyer("kim"))
        .send()
        .await
        .expect("stream opens");
    assert_eq!(own.status().as_u16(), 200);
    let mut own = own.bytes_stream();
    let first = tokio::time::timeout(SOON, own.next())
        .await
        .expect("a first event")
        .expect("stream open")
        .expect("chunk");
    assert!(String::from_utf8_lossy(&first).contains(r#""customerId":"kim""#));
}

/// A webhook receiver that fails the first two attempts of every notification, then accepts.
#[derive(Clone, Default)]
struct FlakyReceiver {
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    accepted: Arc<Mutex<HashMap<String, u32>>>,
    /// The `traceparent` header of every attempt (W3C: version-trace-span-flags).
    traceparents: Arc<Mutex<Vec<String>>>,
    /// Attempts whose `Reserve-Signature` did not verify, with the reason.
    bad_signatures: Arc<Mutex<Vec<String>>>,
}

/// The secret the test's webhook shares with notice-svc.
const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

/// Verifies `Reserve-Signature: t=…,v1=…` as a receiver would: HMAC-SHA256 over "t.body" with
/// the shared secret, and `t` within five minutes of now.
fn verify_signature(header: Option<&str>, body: &str) -> Result<(), String> {
    use hmac::{Hmac, KeyInit, Mac};
    let header = header.ok_or("no Reserve-Signature header")?;
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .ok_or(format!("malformed signature {header:?}"))?;
    let sent: u64 = t.parse().map_err(|_| format!("bad timestamp {t:?}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|err| err.to_string())?
        .as_secs();
    if now.abs_diff(sent) > 300 {
        return Err(format!(
            "timestamp {sent} is {}s from now",
            now.abs_diff(sent)
        ));
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes())
        .map_err(|err| err.to_string())?;
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if expected == v1 {
        Ok(())
    } else {
        Err(format!("signature {v1} does not match the body"))
    }
}

async fn receive(
    State(receiver): State<FlakyReceiver>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Err(reason) = verify_signature(
        headers
            .get("reserve-signature")
            .and_then(|v| v.to_str().ok()),
        &body,
    ) {
        receiver.bad_signatures.lock().expect("lock").push(reason);
        return StatusCode::UNAUTHORIZED;
    }
    receiver.traceparents.lock().expect("lock").push(
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(
        body["eventId"],
        key.as_str(),
        "body and header name the same event"
    );
    let attempt = {
        let mut attempts = receiver.attempts.lock().expect("lock");
        let count = attempts.entry(key.clone()).or_default();
        *count += 1;
        *count
    };
    if attempt <= 2 {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    *receiver
        .accepted
        .lock()
        .expect("lock")
        .entry(key)
        .or_default() += 1;
    StatusCode::OK
}

#[tokio::test]
async fn a_failing_webhook_still_gets_every_notification_exactly_once() {
    let receiver = FlakyReceiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // The path is the messenger's token: it must never be printed.
    let token_path = "/hook/t0ken-that-is-a-credential";
    let hook = format!(
        "http://{}{token_path}",
        listener.local_addr().expect("addr")
    );
    let app = axum::Router::new()
        .route(token_path, post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let options = MeshOptions {
        extra_env: vec![
            (Svc::Notice, "NOTICE_WEBHOOK_URL".into(), hook),
            (
                Svc::Notice,
                "NOTICE_WEBHOOK_SECRET".into(),
                WEBHOOK_SECRET.into(),
            ),
        ],
        ..MeshOptions::default()
    }
    // Two dispatchers over one table, waking for the same retries at the same moment: each
    // attempt is still made once (a pass claims what it sends).
    .with_replicas(Svc::Notice, 2);
    let mesh = Mesh::start("notice_webhook", options).await;
    run_flow(&mesh).await;

    // Placed ×2, payment requested ×2, paid, confirmed, cancelled, voided.
    let notices = mesh
        .eventually("/notices", SOON, |list| {
            list.as_array()
                .is_some_and(|l| l.len() == 8 && l.iter().all(|n| n["delivery"] == "SENT"))
        })
        .await;
    let accepted = receiver.accepted.lock().expect("lock").clone();
    assert_eq!(accepted.len(), 8, "{accepted:?}");
    let bad = receiver.bad_signatures.lock().expect("lock").clone();
    assert!(bad.is_empty(), "every delivery is signed: {bad:?}");
    assert!(accepted.values().all(|count| *count == 1), "{accepted:?}");
    // Each delivery carries the trace of the change it announces.
    let traceparents = receiver.traceparents.lock().expect("lock").clone();
    assert_eq!(traceparents.len(), 24, "three attempts of eight notices");
    for value in &traceparents {
        let parts: Vec<&str> = value.split('-').collect();
        assert!(
            parts.len() == 4 && parts[1].len() == 32 && parts[2].len() == 16,
            "traceparent {value:?}"
        );
    }
    assert!(
        notices
            .as_array()
            .into_iter()
            .flatten()
            .all(|n| n["attempts"] == 3),
        "{notices}"
    );

    // Neither the URL (a credential) nor the secret is printed.
    let log = std::fs::read_to_string(mesh.log_path(Svc::Notice)).expect("notice-svc log");
    assert!(!log.contains(token_path) && !log.contains(WEBHOOK_SECRET));

    let (_, kims) = mesh.get("/notice?customerId=kim").await;
    let kinds: Vec<_> = kims
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["eventType"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds.len(), 4, "{kims}");
    for kind in [
        "ReservationPlaced",
        "PaymentRequested",
        "PaymentCompleted",
        "ReservationConfirmed",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing: {kims}");
    }
    assert!(
        kims[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Reservation 1")),
        "{kims}"
    );
}

#[tokio::test]
async fn an_unreachable_webhook_is_reported_without_its_url() {
    let token_path = "/notify/another-t0ken-credential";
    let closed = e2e::free_local_addr();
    let options = MeshOptions {
        extra_env: vec![
            (
                Svc::Notice,
                "NOTICE_WEBHOOK_URL".into(),
                format!("http://{closed}{token_path}"),
            ),
            (
                Svc::Notice,
                "NOTICE_WEBHOOK_SECRET".into(),
                WEBHOOK_SECRET.into(),
            ),
            (Svc::Notice, "NOTICE_MAX_ATTEMPTS".into(), "1".into()),
        ],
        ..MeshOptions::default()
    };
    let mesh = Mesh::start("notice_webhook_down", options).await;
    let product = mesh.register_product("Phone").await;
    mesh.reserve(product, "kim").await;
    let notices = mesh
        .eventually("/notices", SOON, |list| {
            list.as_array()
                .is_some_and(|l| !l.is_empty() && l.iter().all(|n| n["delivery"] == "FAILED"))
        })
        .await;
    let text = notices.to_string();
    assert!(text.contains("unreachable"), "{text}");
    assert!(
        !text.contains(token_path),
        "last_error shows the URL: {text}"
    );
    let log = std::fs::read_to_string(mesh.log_path(Svc::Notice)).expect("notice-svc log");
    assert!(!log.contains(token_path), "the log shows the URL");
    assert!(!log.contains(WEBHOOK_SECRET), "the log shows the secret");
}
