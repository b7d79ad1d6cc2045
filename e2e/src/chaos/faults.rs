//! The faults of a chaos run: SIGKILL of a random process every 2-5 s (`CHAOS_KILL_EVERY_MS`) (each of the five
//! services, the gateway and NATS, every kind once before any twice), each restarted after a
//! short pause, and one service's database cut off for a while. A process that dies on its
//! own (a service restarted while its database is cut off fails to start) is started again, as
//! Kubernetes would.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use super::{ChaosConfig, Report};
use crate::{Mesh, Svc};

/// What can be killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// A service or the gateway.
    Process(Svc),
    /// The NATS server.
    Nats,
}

impl Target {
    /// The services with a database of their own.
    pub(super) const SERVICES: [Svc; 5] = [
        Svc::Product,
        Svc::Reservation,
        Svc::Payment,
        Svc::MyPage,
        Svc::Notice,
    ];

    /// Every kind of process a run kills.
    pub const ALL: [Target; 7] = [
        Target::Process(Svc::Product),
        Target::Process(Svc::Reservation),
        Target::Process(Svc::Payment),
        Target::Process(Svc::MyPage),
        Target::Process(Svc::Notice),
        Target::Process(Svc::Gateway),
        Target::Nats,
    ];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Process(svc) => svc.binary(),
            Self::Nats => "nats-server",
        }
    }
}

/// A database cut off from its service.
struct Outage {
    database: String,
    until: Instant,
}

/// The fault schedule of one run.
pub(super) struct Schedule {
    rng: fastrand::Rng,
    /// Targets not yet killed in this round (every kind once before any twice).
    round: Vec<Target>,
    outage_length: Duration,
    /// The service whose database is cut off, drawn from the seed alone.
    outage_service: Svc,
    outage: Option<Outage>,
    outage_done: bool,
    kill_every: std::ops::Range<u64>,
}

impl Schedule {
    /// A schedule seeded from the config.
    pub(super) fn new(config: &ChaosConfig) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(config.seed ^ 0x5eed_fa17),
            round: Vec::new(),
            outage_length: config.db_outage,
            outage_service: {
                let mut draw = fastrand::Rng::with_seed(config.seed.rotate_left(17));
                Target::SERVICES[draw.usize(..Target::SERVICES.len())]
            },
            outage: None,
            outage_done: config.db_outage.is_zero(),
            kill_every: config.kill_every.clone(),
        }
    }

    fn next_target(&mut self) -> Target {
        if self.round.is_empty() {
            self.round = Target::ALL.to_vec();
            self.rng.shuffle(&mut self.round);
        }
        self.round.pop().unwrap_or(Target::Nats)
    }

    /// Kills and restarts processes for `length`, and cuts a database off a quarter in.
    pub(super) async fn run(&mut self, mesh: &mut Mesh, length: Duration, report: &mut Report) {
        let started = Instant::now();
        let end = started + length;
        let mut next_kill = started + Duration::from_millis(self.rng.u64(self.kill_every.clone()));
        while Instant::now() < end {
            if !self.outage_done && started.elapsed() >= length / 4 {
                self.cut_database_off(mesh, report);
            }
            if let Some(outage) = &self.outage
                && Instant::now() >= outage.until
            {
                self.restore_database();
            }
            if Instant::now() >= next_kill {
                let target = self.next_target();
                kill(mesh, target);
                *report.kills.entry(target).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(self.rng.u64(300..1000))).await;
                revive(mesh, target);
                next_kill =
                    Instant::now() + Duration::from_millis(self.rng.u64(self.kill_every.clone()));
            }
            self.supervise(mesh);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the outage and starts whatever is down.
    pub(super) async fn heal(&mut self, mesh: &mut Mesh) {
        self.restore_database();
        self.supervise(mesh);
    }

    /// Starts again every process that exited on its own.
    pub(super) fn supervise(&mut self, mesh: &mut Mesh) {
        for svc in Svc::ALL {
            if mesh.has_exited(svc) {
                println!("chaos: {} exited; starting it again", svc.binary());
                mesh.restart(svc);
            }
        }
    }

    fn cut_database_off(&mut self, mesh: &Mesh, report: &mut Report) {
        self.outage_done = true;
        let svc = self.outage_service;
        let Some(database) = mesh.database_url(svc).and_then(|url| {
            let path = url.rsplit('/').next()?;
            Some(path.split('?').next().unwrap_or(path).to_owned())
        }) else {
            return;
        };
        // ALLOW_CONNECTIONS holds for superusers too (a CONNECTION LIMIT does not), and
        // touches only this database; terminating its backends drops the pooled connections.
        let statements = format!(
            "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}';"
        );
        match admin()
            .and_then(|mut conn| conn.batch_execute(&statements).map_err(|e| e.to_string()))
        {
            Ok(()) => {
                println!(
                    "chaos: {}'s database cut off for {:?}",
                    svc.binary(),
                    self.outage_length
                );
                report.db_outages += 1;
                report.db_outage_service = Some(svc);
                self.outage = Some(Outage {
                    database,
                    until: Instant::now() + self.outage_length,
                });
            }
            Err(err) => println!("chaos: could not cut {database} off: {err}"),
        }
    }

    fn restore_database(&mut self) {
        let Some(outage) = self.outage.take() else {
            return;
        };
        let statement = format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
            outage.database
        );
        if let Err(err) =
            admin().and_then(|mut conn| conn.batch_execute(&statement).map_err(|e| e.to_string()))
        {
            println!("chaos: could not restore {}: {err}", outage.database);
            self.outage = Some(outage);
        }
    }
}

/// Kills the last replica of each gRPC service with SIGKILL, one every `length / 6`, and
/// leaves it dead: what a node lost under a scaled-out mesh looks like.
pub(super) async fn kill_one_replica_of_each(
    mesh: &mut Mesh,
    length: Duration,
    report: &mut Report,
) {
    let pause = length / (Target::SERVICES.len() as u32 + 1);
    for svc in Target::SERVICES {
        tokio::time::sleep(pause).await;
        let last = mesh.replicas(svc).saturating_sub(1);
        println!("chaos: kill -9 {} replica {last}", svc.binary());
        mesh.kill_replica((svc, last));
        *report.kills.entry(Target::Process(svc)).or_default() += 1;
    }
    tokio::time::sleep(pause).await;
}

fn admin() -> Result<PgConnection, String> {
    PgConnection::establish(&mesh_core::testing::admin_url()).map_err(|err| err.to_string())
}

fn kill(mesh: &mut Mesh, target: Target) {
    println!("chaos: kill -9 {}", target.name());
    match target {
        Target::Process(svc) => mesh.kill(svc),
        Target::Nats => mesh.nats.stop(),
    }
}

fn revive(mesh: &mut Mesh, target: Target) {
    match target {
        Target::Process(svc) => mesh.restart(svc),
        Target::Nats => mesh.nats.restart(),
    }
}
