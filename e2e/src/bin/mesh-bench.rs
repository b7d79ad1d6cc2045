//! The mesh's benchmark: `script/bench` runs it against release binaries on PostgreSQL and a
//! private NATS JetStream, and it prints `key=value` figures, last lines last.
//!
//! * `mesh-bench` (load): 100 concurrent buyers reserve distinct products through the gateway
//!   for `BENCH_SECONDS` (10); reports throughput, latency, errors, how long a reservation
//!   takes to show as a payment and on my page (sampled), each service's idle RSS and time to
//!   ready, and this run's floors on the same machine: a raw tonic unary call rate and a
//!   PostgreSQL conditional UPDATE rate, with the ratios.
//! * `mesh-bench fault`: the original's scenario. product-svc slowed to 400-620 ms per lock,
//!   100 buyers for `FAULT_SECONDS` (60) with the lock deadline at `FAULT_LOCK_DEADLINE_MS`
//!   (610, the original's Hystrix timeout), then the fault switched off; reports answers by
//!   kind, the slowest answer, and how long until reservations succeed again.
//! * `mesh-bench tracing`: the cost of trace export. The load above (without its samplers)
//!   against fresh meshes with OTLP export off and on (to a receiver in this process, which
//!   shares the machine like the rest), alternating, `TRACING_ROUNDS` (2) rounds each; reports
//!   the mean reserve rate and p99 of each and the ratio.
//!
//! Why one file of ~575 lines: each benchmark mode is a short function over the same mesh, load
//! generator and report; split, they would share most of their imports and helpers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::otlp_collector::OtlpCollector;
use e2e::{Mesh, MeshOptions, Svc};
use reserve_proto::product::v1::ReserveFaults;
use serde_json::json;
use tokio::sync::Mutex;

const USERS: usize = 100;

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "load".to_owned());
    match mode.as_str() {
        "load" => load().await,
        "fault" => fault().await,
        "tracing" => tracing_overhead().await,
        other => {
            eprintln!("unknown mode {other:?}: use `load` (default), `fault` or `tracing`");
            std::process::exit(2);
        }
    }
}

fn seconds(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// Production-sized database pools (the test harness keeps them small).
fn bench_options() -> MeshOptions {
    MeshOptions {
        extra_env: Svc::GRPC
            .into_iter()
            .map(|svc| (svc, "DB_POOL_SIZE".to_owned(), "16".to_owned()))
            .collect(),
        ..MeshOptions::default()
    }
}

async fn register_products(mesh: &Arc<Mesh>, count: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (mesh, next) = (Arc::clone(mesh), Arc::clone(&next));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    mesh.register_product("bench item").await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("registering");
    }
}

/// What the buyers saw.
#[derive(Default)]
struct Tally {
    created: usize,
    conflicts: usize,
    unavailable: usize,
    other: usize,
    latencies: Vec<Duration>,
}

/// `USERS` buyers reserving the next product, until `stop`; `products` bounds the ids.
async fn buyers(mesh: &Arc<Mesh>, products: usize, run_for: Duration, first: usize) -> Tally {
    let next = Arc::new(AtomicUsize::new(first));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Instant::now() + run_for;
    let tasks: Vec<_> = (0..USERS)
        .map(|_| {
            let (mesh, next, tally) = (Arc::clone(mesh), Arc::clone(&next), Arc::clone(&tally));
            tokio::spawn(async move {
                let mut mine = Tally::default();
                while Instant::now() < stop {
                    let product = 1 + next.fetch_add(1, Ordering::Relaxed) % products;
                    let started = Instant::now();
                    let status = match mesh
                        .http
                        .post(mesh.url("/reservation"))
                        .json(&json!({"productId": product}))
                        .send()
                        .await
                    {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    mine.latencies.push(started.elapsed());
                    match status {
                        201 => mine.created += 1,
                        409 => mine.conflicts += 1,
                        503 => mine.unavailable += 1,
                        _ => mine.other += 1,
                    }
                }
                let mut all = tally.lock().await;
                all.created += mine.created;
                all.conflicts += mine.conflicts;
                all.unavailable += mine.unavailable;
                all.other += mine.other;
                all.latencies.extend(mine.latencies);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("buyer");
    }
    Arc::try_unwrap(tally)
        .map(Mutex::into_inner)
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// Reserves one product for its own buyer and waits until both its payment and its my-page
/// row (with the payment) are readable; returns that time.
async fn converge_once(mesh: &Mesh, product: usize) -> Option<Duration> {
    let customer = format!("sampler-{product}");
    let started = Instant::now();
    let (status, reservation) = mesh
        .post_as(
            Some(&mesh.buyer(&customer)),
            "/reservation",
            json!({"productId": product, "customerId": customer}),
        )
        .await;
    if status != 201 {
        return None;
    }
    let payment = format!("/payment?reservationId={}", reservation["id"]);
    let page = format!("/mypage?customerId={customer}");
    loop {
        let (_, payments) = mesh.get(&payment).await;
        let (_, rows) = mesh.get(&page).await;
        if payments.as_array().is_some_and(|l| !l.is_empty())
            && rows[0]["paymentStatus"] == "UNPAID"
        {
            return Some(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks_per_second = 100.0; // Linux USER_HZ
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / ticks_per_second)
        })
        .unwrap_or(0.0)
}

/// Transactions committed by the whole PostgreSQL server so far.
fn postgres_commits() -> f64 {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Commits {
        #[diesel(sql_type = diesel::sql_types::Double)]
        commits: f64,
    }
    PgConnection::establish(&mesh_core::testing::admin_url())
        .ok()
        .and_then(|mut conn| {
            diesel::sql_query("SELECT sum(xact_commit)::float8 AS commits FROM pg_stat_database")
                .get_result::<Commits>(&mut conn)
                .ok()
        })
        .map_or(0.0, |row| row.commits)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Restarts `svc` and returns the time until its gRPC health answers SERVING.
async fn ready_time(mesh: &mut Mesh, svc: Svc) -> Duration {
    mesh.stop(svc);
    let started = Instant::now();
    mesh.restart(svc);
    let url = format!("http://{}", mesh.addr(svc));
    loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("url")
            .connect()
            .await
        {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let answer = health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await;
            if answer.is_ok_and(|r| r.get_ref().status == 1) {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{svc:?} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn tracing_overhead() {
    let run_for = seconds("BENCH_SECONDS", 10);
    let rounds: usize = std::env::var("TRACING_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
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

async fn load() {
    let run_for = seconds("BENCH_SECONDS", 10);
    let products: usize = std::env::var("BENCH_PRODUCTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let mut mesh = Mesh::start("bench_load", bench_options()).await;

    let mut ready = Vec::new();
    for svc in Svc::ALL {
        let took = if svc == Svc::Gateway {
            mesh.stop(svc);
            let started = Instant::now();
            mesh.restart(svc);
            mesh.wait_ready(Duration::from_secs(20)).await;
            started.elapsed()
        } else {
            ready_time(&mut mesh, svc).await
        };
        ready.push((svc, took));
    }
    mesh.wait_ready(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle: Vec<_> = Svc::ALL
        .into_iter()
        .map(|svc| (svc, rss_mib(mesh.pid(svc))))
        .collect();

    let mesh = Arc::new(mesh);
    eprintln!("registering {products} products…");
    register_products(&mesh, products).await;
    eprintln!("{USERS} buyers for {run_for:?}…");
    let sampler = {
        let mesh = Arc::clone(&mesh);
        tokio::spawn(async move {
            let mut lags = Vec::new();
            let stop = Instant::now() + run_for;
            let mut product = products; // from the top down, away from the buyers
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
    let services = Svc::ALL;
    let cpu_before: Vec<f64> = services
        .iter()
        .map(|svc| cpu_seconds(mesh.pid(*svc)))
        .collect();
    let commits_before = postgres_commits();
    let started = Instant::now();
    let mut tally = buyers(&mesh, products - 1000, run_for, 0).await;
    let elapsed = started.elapsed();
    let commits = postgres_commits() - commits_before;
    let cpu: Vec<(Svc, f64)> = services
        .iter()
        .zip(cpu_before)
        .map(|(svc, before)| (*svc, cpu_seconds(mesh.pid(*svc)) - before))
        .collect();
    let mut converge = sampler.await.expect("sampler");
    converge.sort();
    tally.latencies.sort();

    let echo_rps = tonic_echo_floor().await;
    let pg_tps = postgres_update_floor().await;
    let reserve_rps = tally.created as f64 / elapsed.as_secs_f64();

    for (svc, took) in &ready {
        println!(
            "ready_ms_{}={}",
            svc.binary().replace('-', "_"),
            took.as_millis()
        );
    }
    for (svc, rss) in &idle {
        println!("idle_rss_mib_{}={rss:.1}", svc.binary().replace('-', "_"));
    }
    // Where the time goes: CPU each service burned during the load, and database commits.
    for (svc, seconds) in &cpu {
        println!(
            "cpu_share_{}={:.2}",
            svc.binary().replace('-', "_"),
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
    println!("converge_p50_ms={:.1}", percentile(&converge, 0.50));
    println!("converge_p99_ms={:.1}", percentile(&converge, 0.99));
    println!(
        "idle_rss_mib_max={:.1}",
        idle.iter().map(|(_, rss)| *rss).fold(0.0, f64::max)
    );
    println!(
        "ready_ms_max={}",
        ready
            .iter()
            .map(|(_, took)| took.as_millis())
            .max()
            .unwrap_or(0)
    );
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

/// Unary calls per second against a bare tonic server (the health service) on this machine,
/// one HTTP/2 channel, 64 calls in flight, 3 s.
async fn tonic_echo_floor() -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Instant::now() + Duration::from_secs(3);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (channel, done) = (channel.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
                while Instant::now() < stop {
                    if client
                        .check(tonic_health::pb::HealthCheckRequest::default())
                        .await
                        .is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    done.load(Ordering::Relaxed) as f64 / 3.0
}

/// Conditional single-row UPDATEs per second on this machine's PostgreSQL: 16 connections,
/// 3 s, synchronous commit on (what product-svc's lock does, without the service around it).
async fn postgres_update_floor() -> f64 {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let url = mesh_core::testing::fresh_postgres_database("bench_floor");
    {
        let mut conn = PgConnection::establish(&url).expect("floor database");
        conn.batch_execute(
            "CREATE TABLE floor (id BIGINT PRIMARY KEY, status TEXT NOT NULL, holder BIGINT);
             INSERT INTO floor SELECT g, 'AVAILABLE', NULL FROM generate_series(1, 10000) g;",
        )
        .expect("floor table");
    }
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Instant::now() + Duration::from_secs(3);
    let threads: Vec<_> = (0..16)
        .map(|thread| {
            let (url, done) = (url.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).expect("connect");
                let mut n: i64 = thread;
                while Instant::now() < stop {
                    let id = 1 + n % 10_000;
                    let sql = format!(
                        "UPDATE floor SET status = CASE status WHEN 'AVAILABLE' THEN 'PENDING' ELSE 'AVAILABLE' END, holder = {n} WHERE id = {id} AND status IN ('AVAILABLE', 'PENDING')"
                    );
                    if diesel::sql_query(sql).execute(&mut conn).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 16;
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    done.load(Ordering::Relaxed) as f64 / 3.0
}

async fn fault() {
    let run_for = seconds("FAULT_SECONDS", 60);
    // The original protected the same call with a 610 ms Hystrix timeout.
    let deadline_ms = std::env::var("FAULT_LOCK_DEADLINE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(610);
    let options = MeshOptions {
        lock_deadline_ms: deadline_ms,
        ..bench_options()
    };
    let mesh = Arc::new(Mesh::start("bench_fault", options).await);
    let products = 20_000;
    eprintln!("registering {products} products…");
    register_products(&mesh, products).await;
    mesh.set_reserve_faults(ReserveFaults {
        latency_min_ms: 400,
        latency_max_ms: 620,
        error_rate: 0.0,
    })
    .await;
    eprintln!("product-svc slowed to 400-620 ms; {USERS} buyers for {run_for:?}…");
    let mut tally = buyers(&mesh, products / 2, run_for, 0).await;

    mesh.set_reserve_faults(ReserveFaults::default()).await;
    let healed = Instant::now();
    let mut product = products / 2 + 1;
    let recovery = loop {
        let (status, _) = mesh
            .post("/reservation", json!({"productId": product}))
            .await;
        if status == 201 {
            break healed.elapsed();
        }
        if status != 503 {
            tally.other += 1;
        }
        product += 1;
        if healed.elapsed() > Duration::from_secs(60) {
            break healed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tally.latencies.sort();
    println!("lock_deadline_ms={deadline_ms}");
    println!("ok={}", tally.created + tally.conflicts);
    println!("fast_fail_503={}", tally.unavailable);
    println!("other_errors={}", tally.other);
    println!("p50_ms={:.1}", percentile(&tally.latencies, 0.50));
    println!(
        "max_latency_ms={:.1}",
        tally
            .latencies
            .last()
            .map_or(0.0, |l| l.as_secs_f64() * 1000.0)
    );
    println!("recovery_s={:.2}", recovery.as_secs_f64());
}
