//! One reservation, its payment and their notices form traces across all six processes,
//! exported over OTLP/gRPC to a real receiver, with every span's parent where it belongs; the
//! JSON log lines carry the same trace ids; a dead collector changes nothing for a buyer.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::otlp_collector::{CollectedSpan, OtlpCollector};
use e2e::waiting::wait_until;
use e2e::{Mesh, MeshOptions, Svc, free_local_addr};
use serde_json::{Value, json};

const SOON: Duration = Duration::from_secs(20);
const SIX: [&str; 6] = [
    "gateway",
    "product-svc",
    "reservation-svc",
    "payment-svc",
    "mypage-svc",
    "notice-svc",
];

fn exporting_to(endpoint: &str) -> MeshOptions {
    MeshOptions::default()
        .everywhere("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .everywhere("OTEL_BSP_SCHEDULE_DELAY", "100")
}

#[tokio::test]
async fn a_reservation_and_its_payment_are_each_one_trace_across_all_six_processes() {
    let collector = OtlpCollector::start().await;
    let mut options = exporting_to(&collector.endpoint).everywhere("LOG_FORMAT", "json");
    // Quiet logs must not cut traces short: RUST_LOG filters log lines only.
    for quiet in [Svc::MyPage, Svc::Notice] {
        options
            .extra_env
            .push((quiet, "RUST_LOG".into(), "warn".into()));
    }
    let mesh = Mesh::start("tracing_flow", options).await;
    let product = mesh.register_product("Phone").await;

    let reservation_id = mesh.reserve(product, "kim").await;
    let reserve = wait_for_trace(
        &collector,
        "POST /reservation",
        &[
            ("reservation-svc", "publish ReservationPlaced"),
            ("payment-svc", "consume ReservationPlaced"),
            ("mypage-svc", "consume ReservationPlaced"),
            ("notice-svc", "consume ReservationPlaced"),
            ("payment-svc", "publish PaymentRequested"),
            ("mypage-svc", "consume PaymentRequested"),
            ("notice-svc", "consume PaymentRequested"),
            ("notice-svc", "notice.deliver"),
        ],
    )
    .await;
    assert_one_tree_over_six_processes(&reserve);
    let gateway = span(&reserve, "gateway", "POST /reservation");
    let create = span(
        &reserve,
        "reservation-svc",
        "reserve.reservation.v1.ReservationService/CreateReservation",
    );
    assert_eq!(create.parent_span_id.as_ref(), Some(&gateway.span_id));
    assert_eq!(
        create.attribute("reservation.id"),
        Some(reservation_id.to_string().as_str())
    );
    assert_eq!(
        create.attribute("product.id"),
        Some(product.to_string().as_str())
    );
    let lock = span(&reserve, "reservation-svc", "product.lock");
    assert_eq!(lock.parent_span_id.as_ref(), Some(&create.span_id));
    let locked = span(
        &reserve,
        "product-svc",
        "reserve.product.v1.ProductLockService/ReserveProduct",
    );
    assert_eq!(locked.parent_span_id.as_ref(), Some(&lock.span_id));
    let publish = span(&reserve, "reservation-svc", "publish ReservationPlaced");
    assert_eq!(publish.parent_span_id.as_ref(), Some(&create.span_id));
    for consumer in ["payment-svc", "mypage-svc", "notice-svc"] {
        let consume = span(&reserve, consumer, "consume ReservationPlaced");
        assert_eq!(
            consume.parent_span_id.as_ref(),
            Some(&publish.span_id),
            "{consumer}"
        );
        assert_eq!(
            consume.attribute("reservation.id"),
            Some(reservation_id.to_string().as_str())
        );
    }
    // On out through the events a consumer publishes: the payment it created and what that
    // event causes stay in the reservation's trace.
    let created = span(&reserve, "payment-svc", "consume ReservationPlaced");
    let requested = span(&reserve, "payment-svc", "publish PaymentRequested");
    assert_eq!(requested.parent_span_id.as_ref(), Some(&created.span_id));
    for consumer in ["mypage-svc", "notice-svc"] {
        let consume = span(&reserve, consumer, "consume PaymentRequested");
        assert_eq!(
            consume.parent_span_id.as_ref(),
            Some(&requested.span_id),
            "{consumer}"
        );
    }

    // Notices are delivered in the trace of the change they announce.
    let consumed_by_notice: Vec<&str> = reserve
        .iter()
        .filter(|span| span.service == "notice-svc" && span.name.starts_with("consume "))
        .map(|span| span.span_id.as_str())
        .collect();
    let deliveries: Vec<&CollectedSpan> = reserve
        .iter()
        .filter(|span| span.name == "notice.deliver")
        .collect();
    assert!(!deliveries.is_empty());
    for delivery in deliveries {
        let parent = delivery.parent_span_id.as_deref().unwrap_or_default();
        assert!(consumed_by_notice.contains(&parent), "{delivery:#?}");
    }

    let payment_id = mesh.payment_of(reservation_id, SOON).await;
    mesh.pay(payment_id).await;
    let pay = wait_for_trace(
        &collector,
        "PATCH /paid",
        &[
            ("product-svc", "consume PaymentCompleted"),
            ("reservation-svc", "consume PaymentCompleted"),
            ("mypage-svc", "consume PaymentCompleted"),
            ("notice-svc", "consume PaymentCompleted"),
        ],
    )
    .await;
    assert_one_tree_over_six_processes(&pay);
    let pay_call = span(&pay, "payment-svc", "reserve.payment.v1.PaymentService/Pay");
    assert_eq!(
        pay_call.attribute("payment.id"),
        Some(payment_id.to_string().as_str())
    );
    assert_eq!(
        pay_call.links,
        vec![(created.trace_id.clone(), created.span_id.clone())],
        "paying links to the span that created the payment, in the reservation's trace"
    );
    let completed = span(&pay, "payment-svc", "publish PaymentCompleted");
    assert_eq!(completed.parent_span_id.as_ref(), Some(&pay_call.span_id));
    for consumer in ["product-svc", "reservation-svc", "mypage-svc", "notice-svc"] {
        let consume = span(&pay, consumer, "consume PaymentCompleted");
        assert_eq!(
            consume.parent_span_id.as_ref(),
            Some(&completed.span_id),
            "{consumer}"
        );
    }

    // LOG_FORMAT=json: product-svc's line about the lock carries the reservation's trace.
    let log = std::fs::read_to_string(mesh.log_path(Svc::Product)).expect("product-svc log");
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect();
    assert!(!lines.is_empty(), "no JSON log lines:\n{log}");
    let reserved = lines
        .iter()
        .find(|line| line["message"] == "product reserved")
        .unwrap_or_else(|| panic!("no `product reserved` line:\n{log}"));
    assert_eq!(reserved["trace_id"], json!(locked.trace_id));
    assert_eq!(reserved["span_id"], json!(locked.span_id));
}

#[tokio::test]
async fn without_an_exporter_a_callers_trace_still_reaches_every_hop_and_log_line() {
    // No OTLP endpoint: spans get ids only (mesh-core telemetry::span_ids), and those ids must
    // still cross the gateway, the lock call, the outbox, NATS and the notice's delivery.
    let mesh = Mesh::start(
        "tracing_ids_only",
        MeshOptions::default().everywhere("LOG_FORMAT", "json"),
    )
    .await;
    let product = mesh.register_product("Lamp").await;
    let trace_id = "5e2f0c7a9b3d41e6a8c0f1d2e3b4a596";
    let response = mesh
        .bare_http
        .post(mesh.url("/reservation"))
        .bearer_auth(mesh.buyer("lee"))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .json(&json!({"productId": product, "customerId": "lee"}))
        .send()
        .await
        .expect("gateway reachable");
    assert_eq!(response.status(), 201);
    let traced: Value = response.json().await.expect("a reservation");
    mesh.reserve(mesh.register_product("Desk").await, "lee")
        .await;

    // product-svc's line about the lock, two calls downstream of the gateway.
    let reserved = json_lines_of(&mesh, Svc::Product, "product reserved");
    let traces: Vec<&Value> = reserved.iter().map(|line| &line["trace_id"]).collect();
    assert!(traces.contains(&&json!(trace_id)), "{traces:?}");
    assert!(
        reserved
            .iter()
            .all(|line| line["span_id"].as_str().map(str::len) == Some(16)),
        "{reserved:?}"
    );
    // The other reservation started its own trace.
    assert_eq!(reserved.len(), 2, "{reserved:?}");
    assert_ne!(reserved[0]["trace_id"], reserved[1]["trace_id"]);

    // notice-svc's delivery line, after the outbox, NATS and the notice table.
    // Two notices (reserved, payment requested) carry the trace, both of that reservation.
    let sent = wait_until("the traced reservation's notices", SOON, || async {
        let delivered: Vec<Value> = json_lines_of(&mesh, Svc::Notice, "NOTICE")
            .into_iter()
            .filter(|line| line["trace_id"] == json!(trace_id))
            .collect();
        (delivered.len() >= 2).then_some(delivered)
    })
    .await;
    assert!(
        sent.iter()
            .all(|line| line["fields"]["reservation"] == traced["id"]),
        "{sent:?}"
    );
}

/// The JSON log lines of `svc` whose message starts with `message`.
fn json_lines_of(mesh: &Mesh, svc: Svc, message: &str) -> Vec<Value> {
    let log = std::fs::read_to_string(mesh.log_path(svc)).unwrap_or_default();
    log.lines()
        .filter(|line| line.starts_with('{'))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .collect()
}

#[tokio::test]
async fn a_dead_collector_neither_breaks_nor_slows_a_reservation() {
    let nobody = format!("http://{}", free_local_addr());
    let mesh = Mesh::start("tracing_dead_collector", exporting_to(&nobody)).await;
    let mut slowest = Duration::ZERO;
    for n in 0..20 {
        let product = mesh.register_product(&format!("Item {n}")).await;
        let started = Instant::now();
        mesh.reserve(product, "kim").await;
        slowest = slowest.max(started.elapsed());
    }
    mesh.eventually("/payment", SOON, |body| {
        body.as_array().is_some_and(|list| list.len() == 20)
    })
    .await;
    // Export happens on its own thread; nothing on a request's path waits for the collector
    // (whose connection attempts alone take longer than this).
    assert!(
        slowest < Duration::from_secs(2),
        "slowest reservation took {slowest:?}"
    );
}

/// Waits until the collector holds the trace rooted at the gateway's `root` span with every
/// (service, span) in `expected`, spans from all six processes and every span's parent
/// present (spans are exported in batches, children often before their parents), then
/// returns all of its spans. A trace that never links up fails here, by its deadline.
async fn wait_for_trace(
    collector: &OtlpCollector,
    root: &str,
    expected: &[(&str, &str)],
) -> Vec<CollectedSpan> {
    let what = format!("the whole trace of `{root}`");
    wait_until(&what, SOON, || async {
        let gateway = collector
            .spans()
            .into_iter()
            .find(|span| span.service == "gateway" && span.name == root)?;
        let trace = collector.trace(&gateway.trace_id);
        let complete = expected.iter().all(|(service, name)| {
            trace
                .iter()
                .any(|span| span.service == *service && span.name == *name)
        });
        let ids: BTreeSet<&str> = trace.iter().map(|span| span.span_id.as_str()).collect();
        let linked = trace.iter().all(|span| {
            span.parent_span_id
                .as_deref()
                .is_none_or(|parent| ids.contains(parent))
        });
        let services: BTreeSet<&str> = trace.iter().map(|span| span.service.as_str()).collect();
        let everywhere = services == BTreeSet::from(SIX);
        (complete && linked && everywhere).then_some(trace.clone())
    })
    .await
}

/// One root (the gateway's), every other span's parent inside the same trace, and spans from
/// all six processes.
fn assert_one_tree_over_six_processes(trace: &[CollectedSpan]) {
    let ids: BTreeSet<&str> = trace.iter().map(|span| span.span_id.as_str()).collect();
    let roots: Vec<&CollectedSpan> = trace
        .iter()
        .filter(|span| span.parent_span_id.is_none())
        .collect();
    assert_eq!(roots.len(), 1, "roots: {roots:#?}");
    assert_eq!(roots[0].service, "gateway");
    for span in trace {
        if let Some(parent) = &span.parent_span_id {
            assert!(
                ids.contains(parent.as_str()),
                "{} `{}` has a parent outside its trace",
                span.service,
                span.name
            );
        }
    }
    let services: BTreeSet<&str> = trace.iter().map(|span| span.service.as_str()).collect();
    assert_eq!(services, BTreeSet::from(SIX), "processes in the trace");
}

fn span<'a>(trace: &'a [CollectedSpan], service: &str, name: &str) -> &'a CollectedSpan {
    let matching: Vec<&CollectedSpan> = trace
        .iter()
        .filter(|span| span.service == service && span.name == name)
        .collect();
    assert_eq!(matching.len(), 1, "{service} `{name}` spans: {matching:#?}");
    matching[0]
}
