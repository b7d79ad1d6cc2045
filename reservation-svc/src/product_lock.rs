//! The synchronous, deadline-bound call that locks a product in product-svc.
//!
//! One `ReserveProduct` call goes through a tower stack built once at startup:
//!
//! ```text
//! LoadShed → ConcurrencyLimit → CircuitBreaker → Timeout(deadline) → Retry(budget) → one attempt
//! ```
//!
//! * **Load-shed + concurrency limit**: past `max_in_flight` calls waiting on product-svc, a
//!   new call is refused at once instead of queueing, so a slow product-svc cannot pile up
//!   every reservation request behind it.
//! * **Circuit breaker** ([`crate::breaker`]): after consecutive failed calls (deadline passed,
//!   product-svc unavailable) calls fail at once for a while, then one probe decides.
//! * **Timeout**: the whole call, retries included, ends by the deadline; each attempt carries
//!   the time still left as `grpc-timeout`, so product-svc never commits a lock after the
//!   caller stopped waiting for it (it checks before committing).
//! * **Retry**: only `UNAVAILABLE` (connection refused or reset, product-svc restarting) is
//!   retried, and only while a token-bucket budget allows (a percentage of recent successful
//!   calls), so retries cannot multiply load during an outage. Retrying is safe because
//!   `ReserveProduct` is idempotent for the same reservation id.
//!
//! The tonic `Channel` is not wrapped directly (its request body is not `Clone`); the retried
//! service is the typed client call below.
//!
//! Over 400 lines only with its unit tests beside it (a real tonic server as a slow product-
//! svc, the deadline each retry carries).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::lock_metrics::{LOCK_BREAKER, PRODUCT_LOCK_CALLS, PRODUCT_LOCK_SECONDS};
use mesh_core::ConfigError;
use mesh_core::trace_context::{SendTraceContext, TracedChannel};
use mesh_core::upstream::{UpstreamTargets, balanced_channel};
use reserve_proto::product::v1 as pb;
use reserve_proto::product::v1::product_lock_service_client::ProductLockServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::retry::budget::{Budget, TpsBudget};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tracing::Instrument;

use crate::breaker::{BreakerPolicy, BreakerStats, CircuitBreakerLayer, CircuitOpen};
use crate::domain::{Id, LockFailure, LockedProduct, ReservationError};

/// Settings of the lock call; see the README's configuration table.
#[derive(Clone, Debug)]
pub struct LockPolicy {
    /// Whole-call deadline, retries included.
    pub deadline: Duration,
    /// Calls allowed to wait on product-svc at once; more are shed.
    pub max_in_flight: usize,
    /// Retries allowed, as a percentage of recent successful calls.
    pub retry_percent: f32,
    /// Retries allowed for one call, on top of the budget: a product-svc that refuses
    /// connections fails the call fast instead of being retried until the deadline.
    pub max_retries: u32,
    /// Pause before a retry.
    pub retry_backoff: Duration,
    /// When the circuit opens and for how long.
    pub breaker: BreakerPolicy,
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(1000),
            max_in_flight: 256,
            retry_percent: 20.0,
            max_retries: 2,
            retry_backoff: Duration::from_millis(20),
            breaker: BreakerPolicy::default(),
        }
    }
}

/// A cloneable handle to product-svc's lock operations.
#[derive(Clone)]
pub struct ProductLock {
    reserve: BoxCloneSyncService<LockRequest, pb::Product, BoxError>,
    client: ProductLockServiceClient<TracedChannel>,
    policy: LockPolicy,
    breaker: Arc<BreakerStats>,
}

impl ProductLock {
    /// Builds the stack over a lazily connected channel: reservation-svc starts even while
    /// product-svc is down, and reconnects by itself when it comes back. `product_svc_urls`
    /// is one URL (its host resolved to every replica's address) or a comma-separated list;
    /// calls are balanced over the replicas ([`mesh_core::upstream`]), and a retried attempt
    /// may go to another one. Must run inside a Tokio runtime.
    pub fn connect(
        product_svc_urls: &str,
        policy: LockPolicy,
        refresh: Duration,
    ) -> Result<Self, ConfigError> {
        let targets = UpstreamTargets::parse("PRODUCT_INTERNAL_URL", product_svc_urls)?;
        let deadline = policy.deadline;
        let configure =
            move |endpoint: Endpoint| endpoint.connect_timeout(deadline).tcp_nodelay(true);
        Ok(Self::over_channel(
            balanced_channel(targets, configure, refresh),
            policy,
        ))
    }

    fn over_channel(channel: Channel, policy: LockPolicy) -> Self {
        let client = ProductLockServiceClient::with_interceptor(channel, SendTraceContext);
        let retry = RetryUnavailable {
            budget: Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                10,
                policy.retry_percent / 100.0,
            )),
            backoff: policy.retry_backoff,
            retries_left: policy.max_retries,
        };
        let breaker = Arc::new(BreakerStats::default());
        let reserve = ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(policy.max_in_flight)
            .layer(CircuitBreakerLayer::new(
                LOCK_BREAKER,
                policy.breaker,
                Arc::clone(&breaker),
                counts_as_failure,
            ))
            .timeout(policy.deadline)
            .retry(retry)
            .service(ReserveAttempt {
                client: client.clone(),
            });
        Self {
            reserve: BoxCloneSyncService::new(reserve),
            client,
            policy,
            breaker,
        }
    }

    /// Locks `product` for `reservation` and returns the product's name and seller, ending by `until` at
    /// the latest (the caller's deadline, part of which may already be spent). `Refused` means
    /// nothing was locked; `Uncertain` means the lock may exist and must be released later.
    pub async fn reserve_within(
        &self,
        product: Id,
        reservation: Id,
        until: tokio::time::Instant,
    ) -> Result<LockedProduct, LockFailure> {
        if until <= tokio::time::Instant::now() {
            return Err(LockFailure::NotAttempted(
                "the reservation's deadline passed before the product lock".into(),
            ));
        }
        let request = LockRequest {
            message: pb::ReserveProductRequest {
                product_id: product.get(),
                reservation_id: reservation.get(),
            },
            until: until.min(tokio::time::Instant::now() + self.policy.deadline),
        };
        let span = tracing::info_span!(
            "product.lock",
            otel.kind = "client",
            product.id = product.get(),
            reservation.id = reservation.get(),
            outcome = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let call = self.reserve.clone().oneshot(request);
        let (outcome, label) = match tokio::time::timeout_at(until, call)
            .instrument(span.clone())
            .await
        {
            Ok(Ok(locked)) => (
                Ok(LockedProduct {
                    name: locked.name,
                    seller: locked.seller_id,
                }),
                "locked",
            ),
            Ok(Err(err)) => {
                let (failed, failure) = classify(&err, self.policy.deadline);
                (Err(failure), failed.label())
            }
            Err(_) => (
                Err(LockFailure::Uncertain(format!(
                    "product service did not answer within {} ms",
                    self.policy.deadline.as_millis()
                ))),
                "deadline",
            ),
        };
        span.record("outcome", label);
        metrics::counter!(PRODUCT_LOCK_CALLS, "outcome" => label).increment(1);
        metrics::histogram!(PRODUCT_LOCK_SECONDS, "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        outcome
    }

    /// The whole lock call's deadline.
    pub fn deadline(&self) -> Duration {
        self.policy.deadline
    }

    /// Releases `product` if `reservation` holds it; idempotent. One attempt, bounded by the
    /// deadline: the reconciler calls it again until it succeeds.
    pub async fn release(&self, product: Id, reservation: Id) -> Result<(), Status> {
        let mut request = tonic::Request::new(pb::ReleaseProductRequest {
            product_id: product.get(),
            reservation_id: reservation.get(),
        });
        request.set_timeout(self.policy.deadline);
        let mut client = self.client.clone();
        match tokio::time::timeout(self.policy.deadline, client.release_product(request)).await {
            // An unknown product holds no lock: nothing to release.
            Ok(Err(status)) if status.code() == Code::NotFound => Ok(()),
            Ok(result) => result.map(drop),
            Err(_) => Err(Status::deadline_exceeded(
                "product-svc did not answer in time",
            )),
        }
    }

    /// The breaker's counters.
    pub fn breaker_stats(&self) -> &BreakerStats {
        &self.breaker
    }
}

/// What a failed lock call came to: the one reading of its error that the metric label, the
/// breaker and the reservation's answer all share, so the three cannot disagree about which
/// gRPC codes are a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailedCall {
    /// Shed: too many calls already wait on product-svc; never sent.
    Shed,
    /// The breaker is open; never sent.
    CircuitOpen,
    /// No answer by the deadline (ours, or product-svc's own check of it).
    Deadline,
    /// product-svc said no: the product is taken.
    Taken,
    /// product-svc does not know the product.
    UnknownProduct,
    /// product-svc refused the request as invalid.
    Rejected,
    /// product-svc unavailable, or the call broke some other way.
    Unavailable,
}

impl FailedCall {
    fn of(err: &BoxError) -> Self {
        if err.is::<tower::load_shed::error::Overloaded>() {
            Self::Shed
        } else if err.is::<CircuitOpen>() {
            Self::CircuitOpen
        } else if err.is::<tower::timeout::error::Elapsed>() {
            Self::Deadline
        } else {
            err.downcast_ref::<Status>()
                .map_or(Self::Unavailable, |status| Self::of_code(status.code()))
        }
    }

    fn of_code(code: Code) -> Self {
        match code {
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => Self::Taken,
            Code::NotFound => Self::UnknownProduct,
            Code::InvalidArgument | Code::OutOfRange => Self::Rejected,
            Code::DeadlineExceeded | Code::Cancelled => Self::Deadline,
            _ => Self::Unavailable,
        }
    }

    /// A definite "no" from a healthy product-svc: nothing was locked.
    fn is_refusal(self) -> bool {
        matches!(self, Self::Taken | Self::UnknownProduct | Self::Rejected)
    }

    /// The metric label (see `product_lock_calls_total`).
    fn label(self) -> &'static str {
        match self {
            Self::Shed => "shed",
            Self::CircuitOpen => "circuit_open",
            Self::Deadline => "deadline",
            Self::Taken | Self::UnknownProduct | Self::Rejected => "refused",
            Self::Unavailable => "unavailable",
        }
    }

    /// The reservation's answer: a refusal says nothing was locked; anything that may have
    /// happened without our knowing is uncertain. `detail` is product-svc's message.
    fn into_failure(self, detail: String, deadline: Duration) -> LockFailure {
        match self {
            Self::Shed => LockFailure::NotAttempted("too many reservations in progress".into()),
            Self::CircuitOpen => LockFailure::NotAttempted("the product service is failing".into()),
            Self::Deadline => LockFailure::Uncertain(format!(
                "product service did not answer within {} ms",
                deadline.as_millis()
            )),
            Self::Taken => LockFailure::Refused(ReservationError::ProductNotAvailable(detail)),
            Self::UnknownProduct => LockFailure::Refused(ReservationError::ProductNotFound(detail)),
            Self::Rejected => LockFailure::Refused(ReservationError::ProductRejected(detail)),
            Self::Unavailable => {
                LockFailure::Uncertain(format!("product service unavailable ({detail})"))
            }
        }
    }
}

/// Reads a failed call: its kind, and the reservation's answer.
fn classify(err: &BoxError, deadline: Duration) -> (FailedCall, LockFailure) {
    let failed = FailedCall::of(err);
    let detail = err
        .downcast_ref::<Status>()
        .map_or_else(|| err.to_string(), |status| status.message().to_owned());
    (failed, failed.into_failure(detail, deadline))
}

/// Whether a finished call counts against product-svc's health: no answer in time or
/// unavailable does; a refusal (taken, unknown, invalid) is a healthy answer.
fn counts_as_failure(outcome: &Result<pb::Product, BoxError>) -> bool {
    outcome
        .as_ref()
        .is_err_and(|err| !FailedCall::of(err).is_refusal())
}

/// A lock call as it passes the stack: the message and the instant the whole call ends, so
/// every attempt, retries included, tells product-svc only the time still left.
#[derive(Clone, Copy, Debug)]
struct LockRequest {
    message: pb::ReserveProductRequest,
    until: tokio::time::Instant,
}

/// One `ReserveProduct` attempt as a tower service.
#[derive(Clone)]
struct ReserveAttempt {
    client: ProductLockServiceClient<TracedChannel>,
}

impl Service<LockRequest> for ReserveAttempt {
    type Response = pb::Product;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<pb::Product, Status>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // The channel's own readiness is awaited inside the generated client call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: LockRequest) -> Self::Future {
        let left = request
            .until
            .saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Box::pin(async {
                Err(Status::deadline_exceeded(
                    "no time left for another lock attempt",
                ))
            });
        }
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(request.message);
        request.set_timeout(left);
        Box::pin(async move {
            client
                .reserve_product(request)
                .await
                .map(tonic::Response::into_inner)
        })
    }
}

/// Retries `UNAVAILABLE` while the shared budget and this call's own retry count allow.
/// tower clones the policy for every call, so `retries_left` counts per call.
#[derive(Clone)]
struct RetryUnavailable {
    budget: Arc<TpsBudget>,
    backoff: Duration,
    retries_left: u32,
}

impl tower::retry::Policy<LockRequest, pb::Product, Status> for RetryUnavailable {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut LockRequest,
        result: &mut Result<pb::Product, Status>,
    ) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(status)
                if status.code() == Code::Unavailable
                    && self.retries_left > 0
                    && self.budget.withdraw() =>
            {
                self.retries_left -= 1;
                tracing::debug!(message = status.message(), "retrying product lock");
                Some(tokio::time::sleep(self.backoff))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, request: &LockRequest) -> Option<LockRequest> {
        Some(*request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_status(status: Status) -> LockFailure {
        classify(&BoxError::from(status), Duration::from_millis(500)).1
    }

    #[test]
    fn the_label_the_breaker_and_the_answer_agree_on_every_code() {
        for code in (0..=16).map(Code::from) {
            let failed = FailedCall::of_code(code);
            let answer = failed.into_failure(String::new(), Duration::from_millis(500));
            let refused = matches!(answer, LockFailure::Refused(_));
            assert_eq!(failed.is_refusal(), refused, "{code:?}");
            assert_eq!(failed.label() == "refused", refused, "{code:?}");
            let outcome: Result<pb::Product, BoxError> = Err(Box::new(Status::new(code, "")));
            assert_eq!(counts_as_failure(&outcome), !refused, "{code:?}");
        }
    }

    #[test]
    fn a_taken_product_is_a_refusal() {
        let failure = classify_status(Status::failed_precondition("product 3 is PENDING"));
        assert!(matches!(
            failure,
            LockFailure::Refused(ReservationError::ProductNotAvailable(_))
        ));
    }

    #[test]
    fn an_unknown_product_is_a_refusal() {
        let failure = classify_status(Status::not_found("product 9 not found"));
        assert!(matches!(
            failure,
            LockFailure::Refused(ReservationError::ProductNotFound(_))
        ));
    }

    #[test]
    fn refusals_do_not_count_against_product_svc_but_outages_do() {
        let refusal: Result<pb::Product, BoxError> =
            Err(Box::new(Status::failed_precondition("taken")));
        assert!(!counts_as_failure(&refusal));
        let outage: Result<pb::Product, BoxError> = Err(Box::new(Status::unavailable("down")));
        assert!(counts_as_failure(&outage));
        let late: Result<pb::Product, BoxError> =
            Err(Box::new(tower::timeout::error::Elapsed::new()));
        assert!(counts_as_failure(&late));
        assert!(!counts_as_failure(&Ok(pb::Product::default())));
    }

    /// A product-svc whose first lock attempt answers UNAVAILABLE after a pause, and which
    /// records the `grpc-timeout` every attempt arrived with.
    #[derive(Clone, Default)]
    struct SlowThenUp {
        timeouts: Arc<std::sync::Mutex<Vec<String>>>,
    }

    #[tonic::async_trait]
    impl pb::product_lock_service_server::ProductLockService for SlowThenUp {
        async fn release_product(
            &self,
            _: tonic::Request<pb::ReleaseProductRequest>,
        ) -> Result<tonic::Response<pb::Product>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
        async fn reserve_product(
            &self,
            request: tonic::Request<pb::ReserveProductRequest>,
        ) -> Result<tonic::Response<pb::Product>, Status> {
            let timeout = request
                .metadata()
                .get("grpc-timeout")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let first = {
                let mut seen = self.timeouts.lock().expect("lock");
                seen.push(timeout);
                seen.len() == 1
            };
            if first {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return Err(Status::unavailable("restarting"));
            }
            Ok(tonic::Response::new(pb::Product {
                name: "Phone".into(),
                ..Default::default()
            }))
        }
    }

    fn millis(grpc_timeout: &str) -> u64 {
        let value: u64 = grpc_timeout[..grpc_timeout.len() - 1]
            .parse()
            .expect("digits");
        match grpc_timeout.chars().last() {
            Some('m') => value,
            Some('u') => value / 1000,
            Some('n') => value / 1_000_000,
            Some('S') => value * 1000,
            other => panic!("unexpected unit {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_retry_tells_product_svc_only_the_time_left() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let fake = SlowThenUp::default();
        let server = tonic::transport::Server::builder()
            .add_service(
                pb::product_lock_service_server::ProductLockServiceServer::new(fake.clone()),
            )
            .serve(([127, 0, 0, 1], port).into());
        tokio::spawn(server);
        let listening = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < listening,
                "fake product-svc did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let policy = LockPolicy {
            deadline: Duration::from_millis(1000),
            retry_percent: 100.0,
            ..LockPolicy::default()
        };
        let lock = ProductLock::connect(
            &format!("http://127.0.0.1:{port}"),
            policy,
            mesh_core::upstream::DEFAULT_REFRESH,
        )
        .expect("client");
        let until = tokio::time::Instant::now() + Duration::from_millis(1000);
        let id = |raw| Id::parse(raw, "id").expect("id");
        let locked = lock
            .reserve_within(id(1), id(2), until)
            .await
            .expect("the retry locks");
        assert_eq!(locked.name, "Phone");
        let timeouts = fake.timeouts.lock().expect("lock").clone();
        assert_eq!(timeouts.len(), 2, "{timeouts:?}");
        assert!(millis(&timeouts[0]) > 900, "{timeouts:?}");
        assert!(
            millis(&timeouts[1]) <= 700,
            "the retry carried the whole deadline again: {timeouts:?}"
        );
    }

    #[test]
    fn unavailable_and_deadline_are_uncertain() {
        assert!(matches!(
            classify_status(Status::unavailable("connection refused")),
            LockFailure::Uncertain(_)
        ));
        assert!(matches!(
            classify_status(Status::deadline_exceeded("late")),
            LockFailure::Uncertain(_)
        ));
    }
}
