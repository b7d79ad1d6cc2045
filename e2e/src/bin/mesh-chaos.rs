//! The chaos convergence run (`script/chaos`): prints the report as `key=value` lines and
//! exits non-zero on any violated invariant. Settings: `CHAOS_*` (see `e2e::chaos`).

use e2e::chaos::{self, ChaosConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = ChaosConfig::from_env();
    eprintln!("chaos: {config:?}");
    let report = chaos::run(config).await;
    for line in report.lines() {
        println!("{line}");
    }
    if report.violations.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
