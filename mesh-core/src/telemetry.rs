//! Logging setup shared by every binary.
//!
//! Human-readable lines by default; `RUST_LOG` filters as usual (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. Call once, first thing in `main`.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
    if installed.is_ok() {
        tracing::info!(service, "logging initialised");
    }
}
