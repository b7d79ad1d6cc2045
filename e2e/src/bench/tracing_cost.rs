//! `mesh-bench tracing`: what exporting traces costs (see the module above).

use std::sync::Arc;

use super::buyers::{buyers, percentile};
use super::{bench_options, number, register_products, seconds};
use crate::Mesh;
use crate::otlp_collector::OtlpCollector;

/// Runs the rounds and prints their figures.
pub async fn run() {
    let run_for = seconds("BENCH_SECONDS", 10);
    let rounds: usize = number("TRACING_ROUNDS", 2);
    let products = 12_000;
    let collector = OtlpCollector::start().await;
    let mut runs: Vec<(bool, f64, f64)> = Vec::new();
    for round in 0..rounds {
        for export in [false, true] {
            let label = format!(
                "bench_tracing_{}_{round}",
                if export { "on" } else { "off" }
            );
            let mut options = bench_options();
            if export {
                options = options.everywhere("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint);
            }
            let mesh = Arc::new(Mesh::start(&label, options).await);
            register_products(&mesh, products).await;
            let mut tally = buyers(&mesh, products, run_for, 0).await;
            tally.latencies.sort();
            let rps = tally.created as f64 / run_for.as_secs_f64();
            let p99 = percentile(&tally.latencies, 0.99);
            eprintln!(
                "{label}: {rps:.0} reservations/s, p99 {p99:.0} ms, errors {}",
                tally.unavailable + tally.other
            );
            runs.push((export, rps, p99));
        }
    }
    let mean = |export: bool, pick: fn(&(bool, f64, f64)) -> f64| {
        let picked: Vec<f64> = runs
            .iter()
            .filter(|run| run.0 == export)
            .map(pick)
            .collect();
        picked.iter().sum::<f64>() / picked.len().max(1) as f64
    };
    let (off_rps, on_rps) = (mean(false, |run| run.1), mean(true, |run| run.1));
    println!("tracing_rounds={rounds}");
    println!("export_off_reserve_rps={off_rps:.0}");
    println!("export_on_reserve_rps={on_rps:.0}");
    println!("export_off_reserve_p99_ms={:.0}", mean(false, |run| run.2));
    println!("export_on_reserve_p99_ms={:.0}", mean(true, |run| run.2));
    println!("spans_received={}", collector.spans().len());
    println!("ratio_on_to_off={:.3}", on_rps / off_rps.max(1.0));
}
