//! `mesh-bench` (load): the throughput, latency, convergence, CPU and commit figures of the
//! mesh under 100 buyers, with each service's idle RSS and time to ready, and the floors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buyers::{Tally, USERS, buyers, converge_once, percentile};
use super::floors::{postgres_update_floor, tonic_echo_floor};
use super::probes::{cpu_seconds, postgres_commits, ready_time, rss_mib};
use super::{bench_options, number, register_products, seconds};
use crate::{Mesh, Svc};

/// How each service starts and idles.
struct Startup {
    ready: Vec<(Svc, Duration)>,
    idle_rss_mib: Vec<(Svc, f64)>,
}

/// What one load run measured.
struct LoadRun {
    tally: Tally,
    elapsed: Duration,
    commits: f64,
    cpu_seconds: Vec<(Svc, f64)>,
    converge: Vec<Duration>,
}

/// Runs the load and prints its figures.
pub async fn run() {
    let run_for = seconds("BENCH_SECONDS", 10);
    let products: usize = number("BENCH_PRODUCTS", 30_000);
    let mut mesh = Mesh::start("bench_load", bench_options()).await;
    let startup = measure_startup(&mut mesh).await;
    let mesh = Arc::new(mesh);
    eprintln!("registering {products} products…");
    register_products(&mesh, products).await;
    eprintln!("{USERS} buyers for {run_for:?}…");
    let run = measure_load(&mesh, products, run_for).await;
    let echo_rps = tonic_echo_floor().await;
    let pg_tps = postgres_update_floor().await;
    report(&startup, &run, echo_rps, pg_tps);
}

/// Restarts each service to time its start, then reads every idle RSS.
async fn measure_startup(mesh: &mut Mesh) -> Startup {
    let mut ready = Vec::new();
    for svc in Svc::ALL {
        let took = if svc == Svc::Gateway {
            mesh.stop(svc);
            let started = Instant::now();
            mesh.restart(svc);
            mesh.wait_ready(Duration::from_secs(20)).await;
            started.elapsed()
        } else {
            ready_time(mesh, svc).await
        };
        ready.push((svc, took));
    }
    mesh.wait_ready(Duration::from_secs(20)).await;
    // Idle means after start-up's allocations settle, not at the first ready answer.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mib = Svc::ALL
        .into_iter()
        .map(|svc| (svc, rss_mib(mesh.pid(svc))))
        .collect();
    Startup {
        ready,
        idle_rss_mib,
    }
}

/// The buyers' run, with CPU and commits counted around it and convergence sampled during it
/// (from the top product down, away from the buyers).
async fn measure_load(mesh: &Arc<Mesh>, products: usize, run_for: Duration) -> LoadRun {
    let sampler = {
        let mesh = Arc::clone(mesh);
        tokio::spawn(async move {
            let mut lags = Vec::new();
            let stop = Instant::now() + run_for;
            let mut product = products;
            while Instant::now() < stop {
                if let Some(lag) = converge_once(&mesh, product).await {
                    lags.push(lag);
                }
                product -= 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            lags
        })
    };
    let cpu_before: Vec<f64> = Svc::ALL
        .iter()
        .map(|svc| cpu_seconds(mesh.pid(*svc)))
        .collect();
    let commits_before = postgres_commits();
    let started = Instant::now();
    let mut tally = buyers(mesh, products - 1000, run_for, 0).await;
    let elapsed = started.elapsed();
    let commits = postgres_commits() - commits_before;
    let cpu_seconds = Svc::ALL
        .iter()
        .zip(cpu_before)
        .map(|(svc, before)| (*svc, cpu_seconds(mesh.pid(*svc)) - before))
        .collect();
    let mut converge = sampler.await.expect("sampler");
    converge.sort();
    tally.latencies.sort();
    LoadRun {
        tally,
        elapsed,
        commits,
        cpu_seconds,
        converge,
    }
}

fn key(svc: Svc) -> String {
    svc.binary().replace('-', "_")
}

fn report(startup: &Startup, run: &LoadRun, echo_rps: f64, pg_tps: f64) {
    let LoadRun {
        tally,
        elapsed,
        commits,
        cpu_seconds,
        converge,
    } = run;
    let reserve_rps = tally.created as f64 / elapsed.as_secs_f64();
    for (svc, took) in &startup.ready {
        println!("ready_ms_{}={}", key(*svc), took.as_millis());
    }
    for (svc, rss) in &startup.idle_rss_mib {
        println!("idle_rss_mib_{}={rss:.1}", key(*svc));
    }
    // Where the time goes: CPU each service burned during the load, and database commits.
    for (svc, seconds) in cpu_seconds {
        println!(
            "cpu_share_{}={:.2}",
            key(*svc),
            seconds / elapsed.as_secs_f64()
        );
    }
    println!("pg_commits_per_s={:.0}", commits / elapsed.as_secs_f64());
    println!(
        "pg_commits_per_reservation={:.1}",
        commits / (tally.created.max(1) as f64)
    );
    println!("reservations_created={}", tally.created);
    println!("conflicts_409={}", tally.conflicts);
    println!("unavailable_503={}", tally.unavailable);
    println!("reserve_rps={reserve_rps:.0}");
    println!("reserve_p50_ms={:.2}", percentile(&tally.latencies, 0.50));
    println!("reserve_p99_ms={:.2}", percentile(&tally.latencies, 0.99));
    println!("errors={}", tally.other);
    println!("converge_samples={}", converge.len());
    println!("converge_p50_ms={:.1}", percentile(converge, 0.50));
    println!("converge_p99_ms={:.1}", percentile(converge, 0.99));
    let idle_max = startup
        .idle_rss_mib
        .iter()
        .map(|(_, rss)| *rss)
        .fold(0.0, f64::max);
    println!("idle_rss_mib_max={idle_max:.1}");
    let ready_max = startup.ready.iter().map(|(_, took)| took.as_millis()).max();
    println!("ready_ms_max={}", ready_max.unwrap_or(0));
    println!("floor_tonic_echo_rps={echo_rps:.0}");
    println!("floor_pg_update_tps={pg_tps:.0}");
    println!(
        "ratio_reserve_to_echo={:.3}",
        reserve_rps / echo_rps.max(1.0)
    );
    println!(
        "ratio_reserve_to_pg_update={:.3}",
        reserve_rps / pg_tps.max(1.0)
    );
}
