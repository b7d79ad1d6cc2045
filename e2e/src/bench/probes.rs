//! What the benchmark reads about the processes it runs: CPU time, resident memory, the
//! database's commits, and how long a service takes to become ready.

use std::time::{Duration, Instant};

use crate::{Mesh, Svc};

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
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

/// Transactions committed so far in each of `databases` (by name; 0 for one not found).
/// PostgreSQL counts every statement run outside a transaction as one, reads included: this
/// is what the server did for the service, not only what it wrote.
pub fn postgres_commits(databases: &[String]) -> Vec<f64> {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Commits {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
        #[diesel(sql_type = diesel::sql_types::Double)]
        commits: f64,
    }
    let rows = PgConnection::establish(&mesh_core::testing::admin_url())
        .ok()
        .and_then(|mut conn| {
            diesel::sql_query(
                "SELECT datname::text AS datname, xact_commit::float8 AS commits \
                 FROM pg_stat_database WHERE datname IS NOT NULL",
            )
            .load::<Commits>(&mut conn)
            .ok()
        })
        .unwrap_or_default();
    databases
        .iter()
        .map(|name| {
            rows.iter()
                .find(|row| &row.datname == name)
                .map_or(0.0, |row| row.commits)
        })
        .collect()
}

/// The database name in a PostgreSQL URL (`postgres://host/NAME?options`).
pub fn database_name(url: &str) -> String {
    let path = url.rsplit_once('/').map_or(url, |(_, path)| path);
    path.split('?').next().unwrap_or(path).to_owned()
}

/// What the mesh has spent so far: CPU seconds per service, commits per service database.
#[derive(Clone, Debug)]
pub struct Spent {
    /// When it was read.
    pub at: Instant,
    /// CPU seconds of each service, in [`Svc::ALL`] order.
    pub cpu_seconds: Vec<f64>,
    /// Commits of each service's database, in [`Svc::GRPC`] order (0 on SQLite).
    pub commits: Vec<f64>,
}

impl Spent {
    /// Reads the counters now.
    pub fn read(mesh: &Mesh) -> Self {
        Self {
            at: Instant::now(),
            cpu_seconds: Svc::ALL
                .iter()
                .map(|svc| cpu_seconds(mesh.pid(*svc)))
                .collect(),
            commits: postgres_commits(&databases(mesh)),
        }
    }

    /// What was spent between `earlier` and this reading, less what an idle mesh spends in as
    /// long (`idle`, per second: pollers, gauges, heartbeats), never below zero.
    pub fn since(&self, earlier: &Spent, idle: &Spent) -> Spent {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64();
        let less = |now: &[f64], then: &[f64], idle: &[f64]| -> Vec<f64> {
            now.iter()
                .zip(then)
                .zip(idle)
                .map(|((now, then), idle)| (now - then - idle * seconds).max(0.0))
                .collect()
        };
        Spent {
            at: self.at,
            cpu_seconds: less(&self.cpu_seconds, &earlier.cpu_seconds, &idle.cpu_seconds),
            commits: less(&self.commits, &earlier.commits, &idle.commits),
        }
    }

    /// A reading of nothing spent, shaped like `other` (for [`Spent::since`] without idle).
    pub fn zero_like(other: &Spent) -> Spent {
        Spent {
            at: other.at,
            cpu_seconds: vec![0.0; other.cpu_seconds.len()],
            commits: vec![0.0; other.commits.len()],
        }
    }

    /// The rates per second between `earlier` and this reading.
    pub fn rate_since(&self, earlier: &Spent) -> Spent {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        let per_second = |now: &[f64], then: &[f64]| -> Vec<f64> {
            now.iter()
                .zip(then)
                .map(|(now, then)| (now - then) / seconds)
                .collect()
        };
        Spent {
            at: self.at,
            cpu_seconds: per_second(&self.cpu_seconds, &earlier.cpu_seconds),
            commits: per_second(&self.commits, &earlier.commits),
        }
    }
}

/// The databases of the five services, in [`Svc::GRPC`] order ('' on SQLite).
pub fn databases(mesh: &Mesh) -> Vec<String> {
    Svc::GRPC
        .iter()
        .map(|svc| {
            mesh.database_url(*svc)
                .map(|url| database_name(&url))
                .unwrap_or_default()
        })
        .collect()
}

/// The idle mesh's spending per second, over `window`.
pub async fn idle_rates(mesh: &Mesh, window: Duration) -> Spent {
    let start = Spent::read(mesh);
    tokio::time::sleep(window).await;
    Spent::read(mesh).rate_since(&start)
}

/// Waits until the mesh is back to idle after a load (its outboxes relayed, its consumers and
/// dispatchers caught up): two one-second windows in a row in which every database commits
/// no more than idle plus a handful. Returns the reading then.
pub async fn after_settling(mesh: &Mesh, idle: &Spent) -> Spent {
    let mut quiet_windows = 0;
    let mut last = Spent::read(mesh);
    while quiet_windows < 2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Spent::read(mesh);
        let rate = now.rate_since(&last);
        let quiet = rate
            .commits
            .iter()
            .zip(&idle.commits)
            .all(|(busy, idle)| *busy <= idle + 3.0);
        quiet_windows = if quiet { quiet_windows + 1 } else { 0 };
        last = now;
    }
    last
}

/// Resident memory of a process, MiB.
pub fn rss_mib(pid: u32) -> f64 {
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
pub async fn ready_time(mesh: &mut Mesh, svc: Svc) -> Duration {
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
