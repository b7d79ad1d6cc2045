//! reservation-svc's own metrics: the product lock call and the circuit breaker around it
//! (the shared ones are in `mesh_core::telemetry::catalog`). The reservation-path dashboard
//! draws these.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

use crate::breaker::Guarded;

/// Product-lock calls, by `outcome` (`locked`, `refused`, `shed`, `circuit_open`,
/// `deadline`, `unavailable`).
pub const PRODUCT_LOCK_CALLS: &str = "product_lock_calls_total";
/// Product-lock call latency, retries included, by `outcome`.
pub const PRODUCT_LOCK_SECONDS: &str = "product_lock_duration_seconds";

/// What the breaker around the lock call guards, and where it reports.
pub const LOCK_BREAKER: Guarded = Guarded {
    name: "product-svc",
    state_metric: "product_lock_breaker_state",
    opened_metric: "product_lock_breaker_opened_total",
};

/// Registers the help text of these metrics (`# HELP`; `promtool check metrics` wants it).
pub fn describe() {
    describe_counter!(
        PRODUCT_LOCK_CALLS,
        "Product-lock calls to product-svc, by outcome."
    );
    describe_histogram!(
        PRODUCT_LOCK_SECONDS,
        Unit::Seconds,
        "Product-lock call latency, retries included."
    );
    describe_gauge!(
        LOCK_BREAKER.state_metric,
        "Product-lock circuit breaker: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(
        LOCK_BREAKER.opened_metric,
        "Times the product-lock circuit breaker opened."
    );
}
