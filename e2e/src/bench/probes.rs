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

/// Transactions committed by the whole PostgreSQL server so far.
pub fn postgres_commits() -> f64 {
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
