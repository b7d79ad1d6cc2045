//! `mesh-bench open`: open-loop latency. Reservations are offered at a fixed rate
//! (`BENCH_RATE` per second, default 600) for `BENCH_SECONDS` (10), each sent at its scheduled
//! time whether or not earlier ones were answered, and each latency is measured from that
//! scheduled time: a stall delays every request scheduled during it and shows in the figures
//! (no coordinated omission, as a closed loop of buyers would have).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buyers::{Tally, percentile, reserve_once, slowest_ms};
use super::hops;
use super::load::sample_convergence;
use super::{bench_options, number, register_products, seconds};
use crate::Mesh;

/// Offers the load and prints its figures.
pub async fn run() {
    let rate: f64 = number("BENCH_RATE", 600.0);
    let run_for = seconds("BENCH_SECONDS", 10);
    let offered = (rate * run_for.as_secs_f64()).ceil() as usize;
    let samples = 1 + run_for.as_millis() as usize / 50;
    let products = offered + samples + 10;
    let mesh = Arc::new(Mesh::start("bench_open", bench_options()).await);
    eprintln!("registering {products} products…");
    register_products(&mesh, products).await;
    eprintln!("offering {rate}/s for {run_for:?}…");
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let hops_before = hops::snapshot(&mesh).await;
    let sampler = sample_convergence(&mesh, products, Instant::now() + run_for);
    let (sender, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..offered {
        let scheduled = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled).await;
        let (mesh, sender) = (Arc::clone(&mesh), sender.clone());
        tokio::spawn(async move {
            let status = reserve_once(&mesh, n + 1).await;
            // From when it should have been sent, not from when it was.
            let _ = sender.send((status, scheduled.elapsed()));
        });
    }
    drop(sender);
    let mut tally = Tally::default();
    while let Some((status, latency)) = answers.recv().await {
        tally.count(status, latency);
    }
    let elapsed = start.elapsed();
    let hops_after = hops::snapshot(&mesh).await;
    let converge = sampler.await.expect("sampler");
    tally.latencies.sort();
    println!("offered_rate={rate:.0}");
    println!("offered={offered}");
    println!("reservations_created={}", tally.created);
    println!(
        "answered_rate={:.0}",
        tally.latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!("conflicts_409={}", tally.conflicts);
    println!("unavailable_503={}", tally.unavailable);
    println!("errors={}", tally.other);
    println!("open_p50_ms={:.2}", percentile(&tally.latencies, 0.50));
    println!("open_p99_ms={:.2}", percentile(&tally.latencies, 0.99));
    println!("open_p999_ms={:.2}", percentile(&tally.latencies, 0.999));
    println!("open_max_ms={:.2}", slowest_ms(&tally.latencies));
    println!("converge_samples={}", converge.len());
    println!("converge_p50_ms={:.1}", percentile(&converge, 0.50));
    println!("converge_p99_ms={:.1}", percentile(&converge, 0.99));
    hops::report(&hops_before, &hops_after);
}
