//! The Prometheus exporter: the `metrics` facade's global recorder, served over HTTP.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use super::catalog;

/// Installs the recorder and serves its text exposition on `addr` (any path answers, so
/// `/metrics` does). Every series carries `service`, so dashboards can group by it.
pub(super) fn install(service: &'static str, addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .add_global_label("service", service)
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            catalog::LATENCY_BUCKETS,
        )
        .map_err(|err| err.to_string())?
        .install()
        .map_err(|err| format!("{addr}: {err}"))?;
    catalog::describe();
    Ok(())
}
