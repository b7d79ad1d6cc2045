//! A chaos convergence run: the mesh on PostgreSQL and NATS under buyers who reserve, pay and
//! cancel (with idempotency keys and retries), while processes are killed with SIGKILL and one
//! service's database is cut off; then the load stops, the mesh is left to converge, and every
//! invariant is checked against the services' own databases.
//!
//! `script/chaos` runs it from the `mesh-chaos` binary and prints the report; `script/test`
//! runs a short one (`e2e/tests/chaos.rs`). Runs are repeatable in their schedule with
//! `CHAOS_SEED` (the timing of a loaded machine still varies).

mod buyers;
mod faults;
mod invariants;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{Mesh, MeshOptions};

pub use faults::Target;

/// What a chaos run does; every field has a `CHAOS_*` variable.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// `CHAOS_SECONDS` (120): how long the load and the faults last.
    pub seconds: u64,
    /// `CHAOS_SEED` (random): seeds the buyers and the fault schedule.
    pub seed: u64,
    /// `CHAOS_BUYERS` (50): concurrent buyers.
    pub buyers: usize,
    /// `CHAOS_PRODUCTS` (20 per second of load): products registered before the load.
    pub products: usize,
    /// `CHAOS_DB_OUTAGE_SECONDS` (30): how long one service's database is cut off.
    pub db_outage: Duration,
    /// `CHAOS_CONVERGE_SECONDS` (120): how long the mesh may take to converge afterwards.
    pub converge_limit: Duration,
    /// `CHAOS_KILL_EVERY_MS` (`2000..5000`): the pause between two kills, drawn from this range.
    pub kill_every: std::ops::Range<u64>,
}

impl ChaosConfig {
    /// Reads the `CHAOS_*` variables.
    pub fn from_env() -> Self {
        let number = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|raw| raw.trim().parse().ok())
                .unwrap_or(default)
        };
        let seconds = number("CHAOS_SECONDS", 120).max(10);
        Self {
            seconds,
            seed: number("CHAOS_SEED", fastrand::u64(..)),
            buyers: number("CHAOS_BUYERS", 50).max(1) as usize,
            products: number("CHAOS_PRODUCTS", seconds * 20).max(10) as usize,
            db_outage: Duration::from_secs(number("CHAOS_DB_OUTAGE_SECONDS", 30)),
            converge_limit: Duration::from_secs(number("CHAOS_CONVERGE_SECONDS", 120)),
            kill_every: std::env::var("CHAOS_KILL_EVERY_MS")
                .ok()
                .and_then(|raw| {
                    let (low, high) = raw.split_once("..")?;
                    let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
                    (low < high).then_some(low..high)
                })
                .unwrap_or(2000..5000),
        }
    }
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Report {
    /// The seed of the run.
    pub seed: u64,
    /// Seconds of load and faults.
    pub seconds: u64,
    /// Client operations that got a final answer.
    pub ops: u64,
    /// SIGKILLs sent, by target.
    pub kills: BTreeMap<Target, u32>,
    /// Database outages.
    pub db_outages: u32,
    /// Whose database was cut off.
    pub db_outage_service: Option<crate::Svc>,
    /// Answers by kind, retries included.
    pub client_2xx: u64,
    /// 503 answers (each retried).
    pub client_503: u64,
    /// Any other answer, or no answer (connection refused while the gateway was down).
    pub client_other: u64,
    /// Seconds from the end of the load until every invariant held; `None` if never.
    pub converge_s: Option<f64>,
    /// Every invariant broken at the end, in words.
    pub violations: Vec<String>,
}

impl Report {
    /// The report as `key=value` lines, then each violation.
    pub fn lines(&self) -> Vec<String> {
        let kills: u32 = self.kills.values().sum();
        let mut lines = vec![
            format!("seed={}", self.seed),
            format!("seconds={}", self.seconds),
            format!("ops={}", self.ops),
            format!("kills={kills}"),
            format!(
                "kills_by_target={}",
                self.kills
                    .iter()
                    .map(|(target, count)| format!("{}:{count}", target.name()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            format!("db_outages={}", self.db_outages),
            format!(
                "db_outage_service={}",
                self.db_outage_service.map_or("none", super::Svc::binary)
            ),
            format!("client_2xx={}", self.client_2xx),
            format!("client_503={}", self.client_503),
            format!("client_other={}", self.client_other),
            format!(
                "converge_s={}",
                self.converge_s
                    .map_or_else(|| "never".into(), |s| format!("{s:.1}"))
            ),
            format!("violations={}", self.violations.len()),
        ];
        lines.extend(
            self.violations
                .iter()
                .take(50)
                .map(|v| format!("violation: {v}")),
        );
        if self.violations.len() > 50 {
            lines.push(format!("… and {} more", self.violations.len() - 50));
        }
        lines
    }
}

/// The mesh a chaos run drives: quick reconciling, retries that come back within seconds.
pub fn mesh_options() -> MeshOptions {
    MeshOptions {
        lock_deadline_ms: 1000,
        reconcile_grace_ms: 3000,
        reconcile_interval_ms: 500,
        ..MeshOptions::default()
    }
    // Retries of events failing during the outage come back within seconds after it.
    .everywhere("CONSUMER_RETRY_MAX_DELAY_MS", "2000")
    .everywhere("CONSUMER_STALL_AFTER_MS", "5000")
}

/// What goes wrong during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Faults {
    /// Every kind of process killed and restarted, one database cut off (one replica each).
    KillsAndOutage,
    /// The last replica of each gRPC service killed for good, one after the other, spread
    /// over the run: the other replicas must carry on without losing anything.
    OneReplicaOfEach,
}

/// Runs the chaos scenario on a mesh of its own and reports.
pub async fn run(config: ChaosConfig) -> Report {
    let mut mesh = Mesh::start("chaos", mesh_options()).await;
    run_on(&mut mesh, &config, Faults::KillsAndOutage).await
}

/// Runs the load with `faults` on `mesh` (started with [`mesh_options`]), then waits for
/// every invariant to hold and reports.
pub async fn run_on(mesh: &mut Mesh, config: &ChaosConfig, faults: Faults) -> Report {
    buyers::register_products(mesh, config.products).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = buyers::start(mesh, config, Arc::clone(&stop));
    let mut report = Report {
        seed: config.seed,
        seconds: config.seconds,
        ..Report::default()
    };
    let length = Duration::from_secs(config.seconds);
    let mut schedule = faults::Schedule::new(config);
    match faults {
        Faults::KillsAndOutage => schedule.run(mesh, length, &mut report).await,
        Faults::OneReplicaOfEach => {
            faults::kill_one_replica_of_each(mesh, length, &mut report).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let seen = load.finish().await;
    schedule.heal(mesh).await;
    report.ops = seen.ops;
    report.client_2xx = seen.ok;
    report.client_503 = seen.unavailable;
    report.client_other = seen.other;

    let started = Instant::now();
    loop {
        // Anything that crashed on its own (a restart during the outage) is started again.
        schedule.supervise(mesh);
        let violations = invariants::check(mesh, &seen.evidence).await;
        if violations.is_empty() {
            report.converge_s = Some(started.elapsed().as_secs_f64());
            break;
        }
        if started.elapsed() > config.converge_limit {
            report.violations = violations;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    report
}
