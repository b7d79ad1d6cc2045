//! A circuit breaker as one tower layer: after `failure_threshold` consecutive failed calls the
//! circuit opens and calls fail at once for `open_for`; then one probe call is let through
//! (half-open) and its outcome closes the circuit or opens it again.
//!
//! This is what keeps buyers from piling up behind a product-svc that is down or slow: while it
//! is open, reserving answers "try again shortly" in microseconds instead of waiting out the
//! deadline, and product-svc gets room to recover. Transitions are logged and counted under
//! the names the layer is given ([`Guarded`]), so the layer itself knows no service.
//!
//! Over 400 lines only with its unit tests, which sit beside the code (the state machine on a
//! paused clock, the layer around real futures).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tower::{BoxError, Layer, Service};

/// What a breaker guards, for its log lines, and the metrics it reports to.
#[derive(Clone, Copy, Debug)]
pub struct Guarded {
    /// The service behind it, as logs name it.
    pub name: &'static str,
    /// Gauge of its state: 0 closed, 1 half-open, 2 open.
    pub state_metric: &'static str,
    /// Counter of the times it opened.
    pub opened_metric: &'static str,
}

/// When the breaker opens and for how long.
#[derive(Clone, Copy, Debug)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(1),
        }
    }
}

/// The breaker's state, as a pure state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` in a row so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Calls fail fast until `until`.
    Open {
        /// When a probe may go.
        until: Instant,
    },
    /// One probe is in flight; other calls fail fast.
    HalfOpen,
}

/// Whether a call may go through now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go.
    Call,
    /// Go, as the half-open probe.
    Probe,
    /// Fail fast.
    Reject,
}

impl BreakerState {
    /// Decides a call arriving at `now`, moving Open → HalfOpen when its time is up.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match *self {
            Self::Closed { .. } => Admission::Call,
            Self::Open { until } if now >= until => {
                *self = Self::HalfOpen;
                Admission::Probe
            }
            Self::Open { .. } | Self::HalfOpen => Admission::Reject,
        }
    }

    /// Records at `now` the outcome of a call admitted as `admission`. While the circuit is
    /// open or half-open, only the probe's outcome counts: a call admitted before the circuit
    /// opened that succeeds late says nothing about product-svc now, and must not close the
    /// circuit without a probe.
    pub fn record(
        &mut self,
        failed: bool,
        admission: Admission,
        now: Instant,
        policy: &BreakerPolicy,
    ) {
        let probe = admission == Admission::Probe;
        *self = match (*self, failed) {
            (Self::Open { .. } | Self::HalfOpen, _) if !probe => *self,
            (_, false) => Self::Closed { failures: 0 },
            (Self::Closed { failures }, true) if failures + 1 < policy.failure_threshold => {
                Self::Closed {
                    failures: failures + 1,
                }
            }
            (_, true) => Self::Open {
                until: now + policy.open_for,
            },
        };
    }
}

/// The call was not made: the circuit is open.
#[derive(Debug, thiserror::Error)]
#[error("circuit open: the service behind it is failing")]
pub struct CircuitOpen;

/// Counters of the breaker (the metrics are exported beside them), readable in process: the
/// lock client hands them out for tests and diagnostics.
#[derive(Debug, Default)]
pub struct BreakerStats {
    /// Times the circuit opened.
    pub opened: AtomicU64,
    /// Calls failed fast while open.
    pub rejected: AtomicU64,
}

/// Which outcomes count as failures (timeouts, unavailability), not refusals.
pub type FailureTest<R> = fn(&Result<R, BoxError>) -> bool;

/// The layer; clones share one breaker.
#[derive(Clone)]
pub struct CircuitBreakerLayer<R> {
    shared: Arc<Shared>,
    is_failure: FailureTest<R>,
}

struct Shared {
    state: Mutex<BreakerState>,
    guarded: Guarded,
    policy: BreakerPolicy,
    stats: Arc<BreakerStats>,
}

impl<R> CircuitBreakerLayer<R> {
    /// A breaker in front of `guarded` with `policy`, counting into `stats`, judging
    /// outcomes with `is_failure`.
    pub fn new(
        guarded: Guarded,
        policy: BreakerPolicy,
        stats: Arc<BreakerStats>,
        is_failure: FailureTest<R>,
    ) -> Self {
        metrics::counter!(guarded.opened_metric).increment(0);
        report_state(guarded, &BreakerState::Closed { failures: 0 });
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(BreakerState::Closed { failures: 0 }),
                guarded,
                policy,
                stats,
            }),
            is_failure,
        }
    }
}

impl<S, R> Layer<S> for CircuitBreakerLayer<R> {
    type Service = CircuitBreaker<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            shared: Arc::clone(&self.shared),
            is_failure: self.is_failure,
        }
    }
}

/// The service the layer wraps around the call.
#[derive(Clone)]
pub struct CircuitBreaker<S, R> {
    inner: S,
    shared: Arc<Shared>,
    is_failure: FailureTest<R>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, failed: bool, admission: Admission) {
        let mut state = self.lock();
        let before = *state;
        state.record(failed, admission, Instant::now(), &self.policy);
        report_state(self.guarded, &state);
        match (before, *state) {
            (BreakerState::Open { .. }, BreakerState::Open { .. }) => {}
            (_, BreakerState::Open { .. }) => {
                self.stats.opened.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(self.guarded.opened_metric).increment(1);
                tracing::warn!(
                    guarded = self.guarded.name,
                    open_for_ms = self.policy.open_for.as_millis() as u64,
                    "circuit breaker OPEN: {} failing",
                    self.guarded.name
                );
            }
            (BreakerState::HalfOpen, BreakerState::Closed { .. }) => {
                tracing::info!(
                    guarded = self.guarded.name,
                    "circuit breaker CLOSED: {} answered the probe",
                    self.guarded.name
                );
            }
            _ => {}
        }
    }
}

/// Sets the breaker-state gauge: 0 closed, 1 half-open, 2 open.
fn report_state(guarded: Guarded, state: &BreakerState) {
    let value = match state {
        BreakerState::Closed { .. } => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open { .. } => 2.0,
    };
    metrics::gauge!(guarded.state_metric).set(value);
}

/// A call in flight. Dropped before it finished (its caller's deadline passed first), it
/// counts as a failure: an answer that never came is what the breaker is there to notice.
struct PendingCall {
    shared: Option<Arc<Shared>>,
    admission: Admission,
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.record(true, self.admission);
        }
    }
}

impl<S, Req, R> Service<Req> for CircuitBreaker<S, R>
where
    S: Service<Req, Response = R, Error = BoxError>,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = R;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let admission = {
            let mut state = self.shared.lock();
            let admission = state.admit(Instant::now());
            report_state(self.shared.guarded, &state);
            admission
        };
        if admission == Admission::Reject {
            self.shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Box::pin(async { Err(CircuitOpen.into()) });
        }
        if admission == Admission::Probe {
            let name = self.shared.guarded.name;
            tracing::info!(guarded = name, "circuit breaker HALF-OPEN: probing {name}");
        }
        let mut pending = PendingCall {
            shared: Some(Arc::clone(&self.shared)),
            admission,
        };
        let is_failure = self.is_failure;
        let call = self.inner.call(request);
        Box::pin(async move {
            let outcome = call.await;
            if let Some(shared) = pending.shared.take() {
                shared.record(is_failure(&outcome), pending.admission);
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_GUARDED: Guarded = Guarded {
        name: "upstream",
        state_metric: "test_breaker_state",
        opened_metric: "test_breaker_opened_total",
    };

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_millis(100),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let now = Instant::now();
        let mut state = BreakerState::Closed { failures: 0 };
        state.record(true, Admission::Call, now, &policy());
        state.record(true, Admission::Call, now, &policy());
        state.record(false, Admission::Call, now, &policy());
        assert_eq!(
            state,
            BreakerState::Closed { failures: 0 },
            "a success resets the count"
        );
        for _ in 0..3 {
            assert_eq!(state.admit(now), Admission::Call);
            state.record(true, Admission::Call, now, &policy());
        }
        assert!(matches!(state, BreakerState::Open { .. }));
        assert_eq!(state.admit(now), Admission::Reject);
    }

    #[test]
    fn a_probe_after_the_pause_closes_or_reopens() {
        let now = Instant::now();
        let mut state = BreakerState::Open { until: now };
        assert_eq!(state.admit(now), Admission::Probe);
        assert_eq!(state, BreakerState::HalfOpen);
        assert_eq!(state.admit(now), Admission::Reject, "one probe at a time");
        state.record(true, Admission::Probe, now, &policy());
        assert_eq!(
            state,
            BreakerState::Open {
                until: now + Duration::from_millis(100)
            }
        );

        let later = now + Duration::from_millis(100);
        assert_eq!(state.admit(later), Admission::Probe);
        state.record(false, Admission::Probe, later, &policy());
        assert_eq!(state, BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_late_success_of_a_call_from_before_does_not_close_the_circuit() {
        let now = Instant::now();
        let until = now + Duration::from_millis(100);
        let mut state = BreakerState::Open { until };
        state.record(false, Admission::Call, now, &policy());
        assert_eq!(state, BreakerState::Open { until }, "open stays open");

        let later = until;
        assert_eq!(state.admit(later), Admission::Probe);
        state.record(false, Admission::Call, later, &policy());
        assert_eq!(state, BreakerState::HalfOpen, "only the probe decides");
        state.record(true, Admission::Call, later, &policy());
        assert_eq!(
            state,
            BreakerState::HalfOpen,
            "a late failure does not decide either"
        );
        state.record(false, Admission::Probe, later, &policy());
        assert_eq!(state, BreakerState::Closed { failures: 0 });
    }

    #[tokio::test]
    async fn a_slow_call_succeeding_after_the_circuit_opened_leaves_it_open() {
        use tower::{ServiceBuilder, ServiceExt};
        let stats = Arc::new(BreakerStats::default());
        let layer = CircuitBreakerLayer::<u32>::new(
            TEST_GUARDED,
            policy(),
            Arc::clone(&stats),
            std::result::Result::is_err,
        );
        let release = Arc::new(tokio::sync::Notify::new());
        let service = {
            let release = Arc::clone(&release);
            ServiceBuilder::new()
                .layer(layer)
                .service_fn(move |slow: bool| {
                    let release = Arc::clone(&release);
                    async move {
                        if slow {
                            release.notified().await;
                            Ok::<u32, BoxError>(1)
                        } else {
                            Err("down".into())
                        }
                    }
                })
        };
        let slow = tokio::spawn(service.clone().oneshot(true));
        tokio::task::yield_now().await;
        for _ in 0..3 {
            assert!(service.clone().oneshot(false).await.is_err());
        }
        assert_eq!(stats.opened.load(Ordering::Relaxed), 1);
        release.notify_one();
        assert_eq!(slow.await.expect("join").expect("late success"), 1);
        let err = service
            .clone()
            .oneshot(false)
            .await
            .expect_err("still open");
        assert!(err.is::<CircuitOpen>(), "{err}");
    }

    #[tokio::test]
    async fn the_layer_fails_fast_while_open() {
        use tower::{ServiceBuilder, ServiceExt};
        let stats = Arc::new(BreakerStats::default());
        let layer = CircuitBreakerLayer::<u32>::new(
            TEST_GUARDED,
            policy(),
            Arc::clone(&stats),
            std::result::Result::is_err,
        );
        let failing = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) });
        for _ in 0..3 {
            assert!(failing.clone().oneshot(1).await.is_err());
        }
        let err = failing.clone().oneshot(1).await.expect_err("open");
        assert!(err.is::<CircuitOpen>(), "{err}");
        assert_eq!(stats.opened.load(Ordering::Relaxed), 1);
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
    }

    // The clock is paused: the timeouts and the hanging call's minute pass at once.
    #[tokio::test(start_paused = true)]
    async fn calls_abandoned_by_their_caller_count_as_failures() {
        use tower::{ServiceBuilder, ServiceExt};
        let stats = Arc::new(BreakerStats::default());
        let layer = CircuitBreakerLayer::<u32>::new(
            TEST_GUARDED,
            policy(),
            Arc::clone(&stats),
            std::result::Result::is_err,
        );
        let hanging = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_: u32| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<u32, BoxError>(1)
            });
        for _ in 0..3 {
            let call = hanging.clone().oneshot(1);
            assert!(
                tokio::time::timeout(Duration::from_millis(5), call)
                    .await
                    .is_err()
            );
        }
        let err = hanging.clone().oneshot(1).await.expect_err("open");
        assert!(err.is::<CircuitOpen>(), "{err}");
    }
}
