//! Every binary serves Prometheus metrics that Prometheus's own linter accepts, and every
//! metric the shipped Grafana dashboards query is one the binaries export.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::waiting::wait_until;
use e2e::{Mesh, MeshOptions, Svc, find_tool};
use serde_json::{Value, json};

const SOON: Duration = Duration::from_secs(20);

#[tokio::test]
async fn every_binary_serves_linted_metrics_covering_every_dashboard_query() {
    let mesh = Mesh::start("metrics_scrape", MeshOptions::default()).await;
    drive_the_whole_flow(&mesh).await;
    call_paths_no_service_serves(&mesh).await;

    let mut exported = BTreeSet::new();
    for svc in Svc::ALL {
        let response = mesh
            .http
            .get(mesh.metrics_url(svc))
            .send()
            .await
            .unwrap_or_else(|err| panic!("scraping {svc:?}: {err}"));
        assert_eq!(response.status(), 200, "{svc:?} /metrics");
        let text = response.text().await.expect("metrics body");
        promtool_accepts(svc, &text);
        assert!(
            !text.contains("made.up."),
            "{svc:?} labels metrics with a path it does not serve:\n{text}"
        );
        let names = metric_names(&text);
        assert!(
            names.contains("grpc_server_handled_total")
                || names.contains("http_server_requests_total"),
            "{svc:?} exports no RED metrics:\n{text}"
        );
        exported.extend(names);
    }

    let queried = dashboard_metrics();
    assert!(queried.len() >= 15, "dashboards query only {queried:?}");
    let missing: Vec<&String> = queried
        .keys()
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "dashboards query metrics no binary exports: {:?}",
        missing
            .iter()
            .map(|name| format!("{name} (in {})", queried[*name]))
            .collect::<Vec<_>>()
    );
}

/// Calls made-up gRPC paths on every service: each is answered UNIMPLEMENTED and must not
/// become a metric series of its own.
async fn call_paths_no_service_serves(mesh: &Mesh) {
    for svc in [
        Svc::Product,
        Svc::Reservation,
        Svc::Payment,
        Svc::MyPage,
        Svc::Notice,
    ] {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", mesh.addr(svc)))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        for i in 0..5 {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await.expect("ready");
            let path = http::uri::PathAndQuery::try_from(format!("/made.up.Scanner{i}/Probe{i}"))
                .expect("path");
            let status = grpc
                .unary(
                    tonic::Request::new(()),
                    path,
                    tonic_prost::ProstCodec::<(), ()>::default(),
                )
                .await
                .expect_err("no service serves it");
            assert_eq!(
                status.code(),
                tonic::Code::Unimplemented,
                "{svc:?}: {status}"
            );
        }
    }
}

/// A reservation (201), the same product again (409), the payment, until my page shows it
/// paid: every kind of series the dashboards draw gets a sample.
async fn drive_the_whole_flow(mesh: &Mesh) {
    let product = mesh.register_product("Phone").await;
    let reservation = mesh.reserve(product, "kim").await;
    let (status, _) = mesh
        .post_as(
            Some(&mesh.buyer("lee")),
            "/reservation",
            json!({"productId": product, "customerId": "lee"}),
        )
        .await;
    assert_eq!(status, 409);
    let payment = mesh.payment_of(reservation, SOON).await;
    mesh.pay(payment).await;
    mesh.eventually("/mypage?customerId=kim", SOON, |body| {
        body.to_string().contains("PAID")
    })
    .await;
    // Gauges sampled every second (pool, backlog) have their first sample.
    wait_until(
        "the sampled gauges in every service's /metrics",
        SOON,
        || async {
            let mut backlog = false;
            for svc in Svc::ALL.into_iter().filter(|svc| *svc != Svc::Gateway) {
                let text = mesh.metrics_text(svc).await?;
                if !text.contains("db_pool_connections{") {
                    return None;
                }
                backlog |= text.contains("outbox_backlog{") || text.contains("outbox_backlog ");
            }
            backlog.then_some(())
        },
    )
    .await;
}

/// `promtool check metrics` (Debian's prometheus package) lints the exposition: help text,
/// counter suffixes, base units.
fn promtool_accepts(svc: Svc, exposition: &str) {
    let promtool =
        find_tool("promtool").expect("promtool not found: script/test installs it into .tools/bin");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(exposition.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool output");
    assert!(
        output.status.success(),
        "promtool rejects {svc:?}'s metrics:\n{}{}\n{exposition}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Sample names in a text exposition (`name{labels} value` or `name value`).
fn metric_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../helm/reserve-mesh/dashboards")
}

/// Every metric named in a Prometheus query (`expr`) of a shipped dashboard, with the file
/// that names it. Queries write every metric with a selector (`name{…}`), which is how the
/// names are found.
fn dashboard_metrics() -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let entries = std::fs::read_dir(dashboards_dir()).expect("helm/reserve-mesh/dashboards");
    for entry in entries {
        let path = entry.expect("dashboard entry").path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let file = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).expect("read dashboard");
        let dashboard: Value =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{file}: {err}"));
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        for expr in exprs {
            for name in selected_metrics(&expr) {
                found.entry(name).or_insert_with(|| file.clone());
            }
        }
    }
    found
}

fn collect_exprs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr", Value::String(expr)) => into.push(expr.clone()),
                    _ => collect_exprs(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_exprs(item, into)),
        _ => {}
    }
}

/// The identifiers right before each `{` of a PromQL expression.
fn selected_metrics(expr: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.match_indices('{')
        .filter_map(|(at, _)| {
            let before = &expr[..at];
            let start = before.rfind(|c: char| !is_name(c)).map_or(0, |i| i + 1);
            let name = &before[start..];
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn metric_names_are_read_from_selectors() {
    assert_eq!(
        selected_metrics(
            r#"histogram_quantile(0.99, sum by (le) (rate(grpc_server_handling_seconds_bucket{grpc_method="Pay"}[5m])))"#
        ),
        vec!["grpc_server_handling_seconds_bucket"]
    );
}
