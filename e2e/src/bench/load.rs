//! `mesh-bench` (load) and `mesh-bench embedded`: the throughput, latency, convergence and
//! per-reservation CPU and commit budgets of the mesh under 100 buyers, with each service's
//! idle RSS and time to ready, and the floors. `embedded` runs the same load against the
//! SQLite files `script/server` uses by default (no commit figures there).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buyers::{Tally, USERS, buyers, converge_once, percentile};
use super::floors::{postgres_update_floor, tonic_echo_floor};
use super::probes::{Spent, after_settling, idle_rates, ready_time, rss_mib};
use super::{bench_options, number, register_products, seconds};
use crate::{Mesh, MeshOptions, Svc};

/// Mesh CPU per fully processed reservation this design aims at (issue budget), µs.
pub const CPU_BUDGET_US: f64 = 600.0;
/// PostgreSQL commits per fully processed reservation it aims at.
pub const COMMIT_BUDGET: f64 = 3.0;

/// How each service starts and idles.
struct Startup {
    ready: Vec<(Svc, Duration)>,
    idle_rss_mib: Vec<(Svc, f64)>,
}

/// What one load run measured.
struct LoadRun {
    tally: Tally,
    elapsed: Duration,
    /// During the load only: for the CPU shares.
    during: Spent,
    /// From the start of the load until the mesh settled, less idle spending: the whole
    /// cost of the reservations, their asynchronous half included.
    per_load: Spent,
    converge: Vec<Duration>,
}

/// Runs the load on PostgreSQL and prints its figures; with `BENCH_REPLICAS` above 1, runs
/// it with 1 and with that many product-svc and reservation-svc replicas instead
/// ([`run_replicated`]).
pub async fn run() {
    let replicas: usize = number("BENCH_REPLICAS", 1);
    if replicas > 1 {
        run_replicated(replicas).await;
    } else {
        run_on("bench_load", bench_options(), true).await;
    }
}

/// The load on a fresh mesh with one product-svc and reservation-svc, then on one with
/// `replicas` of each (the gateway balancing over them, reservation-svc over the product-svc
/// replicas), printed side by side: `reserve_rps_replicas_<n>`, `reserve_p99_ms_replicas_<n>`,
/// `errors_replicas_<n>`. On one machine the replicas share its cores: the figure shows what
/// spreading costs or buys here, not what more nodes would.
async fn run_replicated(replicas: usize) {
    let run_for = seconds("BENCH_SECONDS", 10);
    let products: usize = number("BENCH_PRODUCTS", 30_000);
    let mut lines = Vec::new();
    for count in [1, replicas] {
        let options = bench_options()
            .with_replicas(Svc::Product, count)
            .with_replicas(Svc::Reservation, count);
        let mesh = Arc::new(Mesh::start(&format!("bench_replicas_{count}"), options).await);
        eprintln!("{count} replica(s): registering {products} products…");
        register_products(&mesh, products).await;
        eprintln!("{count} replica(s): {USERS} buyers for {run_for:?}…");
        let mut tally = buyers(&mesh, products - 1000, run_for, 0).await;
        warn_if_products_ran_out(&tally);
        tally.latencies.sort();
        let rps = tally.created as f64 / run_for.as_secs_f64();
        lines.push(format!("reserve_rps_replicas_{count}={rps:.0}"));
        lines.push(format!(
            "reserve_p99_ms_replicas_{count}={:.2}",
            percentile(&tally.latencies, 0.99)
        ));
        lines.push(format!("errors_replicas_{count}={}", tally.other));
    }
    for line in lines {
        println!("{line}");
    }
}

/// Runs the load on the embedded SQLite default and prints its figures.
pub async fn run_embedded() {
    let options = MeshOptions {
        sqlite: true,
        ..bench_options()
    };
    run_on("bench_embedded", options, false).await;
}

async fn run_on(label: &str, options: MeshOptions, floors: bool) {
    let run_for = seconds("BENCH_SECONDS", 10);
    let products: usize = number("BENCH_PRODUCTS", 30_000);
    let mut mesh = Mesh::start(label, options).await;
    let startup = measure_startup(&mut mesh).await;
    let mesh = Arc::new(mesh);
    eprintln!("registering {products} products…");
    register_products(&mesh, products).await;
    eprintln!("{USERS} buyers for {run_for:?}…");
    let run = measure_load(&mesh, products, run_for).await;
    report_startup(&startup);
    report_load(&run, floors);
    if floors {
        let echo_rps = tonic_echo_floor().await;
        let pg_tps = postgres_update_floor().await;
        report_floors(&run, echo_rps, pg_tps);
    }
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

/// Samples how long reservations take to reach their payment and my page, one every 50 ms,
/// from the top product down (away from the buyers), until `stop`.
pub(super) fn sample_convergence(
    mesh: &Arc<Mesh>,
    top_product: usize,
    stop: Instant,
) -> tokio::task::JoinHandle<Vec<Duration>> {
    let mesh = Arc::clone(mesh);
    tokio::spawn(async move {
        let mut lags = Vec::new();
        let mut product = top_product;
        while Instant::now() < stop {
            if let Some(lag) = converge_once(&mesh, product).await {
                lags.push(lag);
            }
            product -= 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        lags.sort();
        lags
    })
}

/// The buyers' run, with CPU and commits counted around it (until the mesh settles after it)
/// and convergence sampled during it.
async fn measure_load(mesh: &Arc<Mesh>, products: usize, run_for: Duration) -> LoadRun {
    let idle = idle_rates(mesh, Duration::from_secs(2)).await;
    let sampler = sample_convergence(mesh, products, Instant::now() + run_for);
    let before = Spent::read(mesh);
    let mut tally = buyers(mesh, products - 1000, run_for, 0).await;
    let end_of_load = Spent::read(mesh);
    let elapsed = end_of_load.at.duration_since(before.at);
    let converge = sampler.await.expect("sampler");
    let settled = after_settling(mesh, &idle).await;
    tally.latencies.sort();
    LoadRun {
        during: end_of_load.since(&before, &Spent::zero_like(&idle)),
        per_load: settled.since(&before, &idle),
        tally,
        elapsed,
        converge,
    }
}

fn key(svc: Svc) -> String {
    svc.binary().replace('-', "_")
}

fn report_startup(startup: &Startup) {
    for (svc, took) in &startup.ready {
        println!("ready_ms_{}={}", key(*svc), took.as_millis());
    }
    for (svc, rss) in &startup.idle_rss_mib {
        println!("idle_rss_mib_{}={rss:.1}", key(*svc));
    }
    let idle_max = startup
        .idle_rss_mib
        .iter()
        .map(|(_, rss)| *rss)
        .fold(0.0, f64::max);
    println!("idle_rss_mib_max={idle_max:.1}");
    let ready_max = startup.ready.iter().map(|(_, took)| took.as_millis()).max();
    println!("ready_ms_max={}", ready_max.unwrap_or(0));
}

/// Prints how many requests asked again for a product already asked for, and says loudly on
/// stderr when that happened: the rate is then the products' count, not the mesh's.
fn warn_if_products_ran_out(tally: &Tally) {
    println!("products_reused={}", tally.products_reused);
    if tally.products_reused > 0 {
        eprintln!(
            "warning: the buyers ran out of products ({} requests asked for one again): \
             reserve_rps is capped by BENCH_PRODUCTS; raise it",
            tally.products_reused
        );
    }
}

fn report_load(run: &LoadRun, commits: bool) {
    let LoadRun {
        tally,
        elapsed,
        during,
        per_load,
        converge,
    } = run;
    let created = tally.created.max(1) as f64;
    warn_if_products_ran_out(tally);
    // Where the time goes: CPU each service burned during the load, then the whole cost of a
    // reservation (its asynchronous half included) per service, and the commits behind it.
    for (svc, seconds) in Svc::ALL.iter().zip(&during.cpu_seconds) {
        println!(
            "cpu_share_{}={:.2}",
            key(*svc),
            seconds / elapsed.as_secs_f64()
        );
    }
    let mut cpu_total = 0.0;
    for (svc, seconds) in Svc::ALL.iter().zip(&per_load.cpu_seconds) {
        let us = seconds * 1e6 / created;
        cpu_total += us;
        println!("cpu_us_per_reservation_{}={us:.0}", key(*svc));
    }
    println!("cpu_us_per_reservation={cpu_total:.0}");
    println!("cpu_us_per_reservation_budget={CPU_BUDGET_US:.0}");
    if commits {
        let mut commit_total = 0.0;
        for (svc, count) in Svc::GRPC.iter().zip(&per_load.commits) {
            let per = count / created;
            commit_total += per;
            println!("pg_commits_per_reservation_{}={per:.2}", key(*svc));
        }
        println!("pg_commits_per_reservation={commit_total:.2}");
        println!("pg_commits_per_reservation_budget={COMMIT_BUDGET:.0}");
    }
    println!("reservations_created={}", tally.created);
    println!("conflicts_409={}", tally.conflicts);
    println!("unavailable_503={}", tally.unavailable);
    println!("reserve_rps={:.0}", reserve_rps(run));
    println!("reserve_p50_ms={:.2}", percentile(&tally.latencies, 0.50));
    println!("reserve_p99_ms={:.2}", percentile(&tally.latencies, 0.99));
    println!("errors={}", tally.other);
    println!("converge_samples={}", converge.len());
    println!("converge_p50_ms={:.1}", percentile(converge, 0.50));
    println!("converge_p99_ms={:.1}", percentile(converge, 0.99));
}

fn reserve_rps(run: &LoadRun) -> f64 {
    run.tally.created as f64 / run.elapsed.as_secs_f64()
}

fn report_floors(run: &LoadRun, echo_rps: f64, pg_tps: f64) {
    let reserve_rps = reserve_rps(run);
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
    // The headline last, as before.
    println!("reserve_rps={reserve_rps:.0}");
}
