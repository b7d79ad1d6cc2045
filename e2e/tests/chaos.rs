//! A short chaos convergence run inside `script/test`: 30 s of buyers while every kind of
//! process (the five services, the gateway, NATS) is killed with SIGKILL at least once and one
//! database is cut off, then every invariant must hold (see `e2e::chaos`).

use std::time::Duration;

use e2e::chaos::{self, ChaosConfig, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_mesh_converges_after_kills_and_a_database_outage() {
    let config = ChaosConfig {
        seconds: 30,
        seed: 20261129,
        buyers: 20,
        products: 400,
        db_outage: Duration::from_secs(10),
        converge_limit: Duration::from_secs(120),
        // Seven kinds in 30 s: at most 4 s between kills, restart pause included.
        kill_every: 1500..3000,
    };
    let report = chaos::run(config).await;
    let lines = report.lines().join("\n");
    println!("{lines}");
    for target in Target::ALL {
        assert!(
            report.kills.get(&target).copied().unwrap_or(0) >= 1,
            "{} was never killed:\n{lines}",
            target.name()
        );
    }
    assert_eq!(report.db_outages, 1, "{lines}");
    assert!(report.client_2xx > 0, "no client succeeded:\n{lines}");
    assert!(report.violations.is_empty(), "{lines}");
}
