//! The mesh's benchmarks, one module per mode, over a shared load generator
//! ([`buyers`]), process probes ([`probes`]) and this machine's floors ([`floors`]).
//! `script/bench` runs the `mesh-bench` binary against release binaries on PostgreSQL and a
//! private NATS JetStream; every mode prints `key=value` figures, last lines last.
//!
//! * [`load`]: 100 concurrent buyers reserve distinct products through the gateway
//!   for `BENCH_SECONDS` (10); reports throughput, latency, errors, how long a reservation
//!   takes to show as a payment and on my page (sampled), each service's idle RSS and time to
//!   ready, and this run's floors on the same machine: a raw tonic unary call rate and a
//!   PostgreSQL conditional UPDATE rate, with the ratios; and the budgets: CPU µs and
//!   PostgreSQL commits per fully processed reservation, per service and summed (counted from
//!   the start of the load until the mesh has settled after it, less what it spends idle).
//!   With `BENCH_REPLICAS` (n > 1): the load with 1 and with n product-svc and reservation-svc
//!   replicas, `reserve_rps_replicas_<n>` side by side.
//! * [`load`] `embedded`: the same load on the SQLite files `script/server` uses by default.
//! * [`open`]: open-loop latency at a fixed offered rate (`BENCH_RATE`), measured from each
//!   request's scheduled send time, and each synchronous hop's own p50/p99 ([`hops`]).
//! * [`fault`]: the original's scenario. product-svc slowed to 400-620 ms per lock,
//!   100 buyers for `FAULT_SECONDS` (60) with the lock deadline at `FAULT_LOCK_DEADLINE_MS`
//!   (610, the original's Hystrix timeout), then the fault switched off; reports answers by
//!   kind, the slowest answer, and how long until reservations succeed again.
//! * [`tracing_cost`]: the cost of trace export. The load above (without its samplers)
//!   against fresh meshes with OTLP export off and on (to a receiver in this process, which
//!   shares the machine like the rest), alternating, `TRACING_ROUNDS` (2) rounds each; reports
//!   the mean reserve rate and p99 of each and the ratio.

pub mod buyers;
pub mod fault;
pub mod floors;
pub mod hops;
pub mod load;
pub mod open;
pub mod probes;
pub mod tracing_cost;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{Mesh, MeshOptions, Svc};

/// A duration in whole seconds from the environment variable `name`, else `default`.
pub fn seconds(name: &str, default: u64) -> Duration {
    Duration::from_secs(number(name, default))
}

/// A number from the environment variable `name`, else `default`.
pub fn number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Production-sized database pools (the test harness keeps them small).
pub fn bench_options() -> MeshOptions {
    MeshOptions {
        extra_env: Svc::GRPC
            .into_iter()
            .map(|svc| (svc, "DB_POOL_SIZE".to_owned(), "16".to_owned()))
            .collect(),
        ..MeshOptions::default()
    }
}

/// Registers `count` products through the gateway, 32 at a time.
pub async fn register_products(mesh: &Arc<Mesh>, count: usize) {
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
