//! gRPC clients of the services behind the gateway, over lazily connected channels: the
//! gateway starts (and answers 503) while a service is down, and reconnects when it is back.
//! Each client balances its calls over every replica of its service
//! ([`mesh_core::upstream`]): a URL may name one host, resolved to all of its addresses, or
//! a comma-separated list.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::ConfigError;
use mesh_core::trace_context::{SendTraceContext, TracedChannel};
use mesh_core::upstream::{UpstreamTargets, balanced_channel};
use reserve_proto::mypage::v1::my_page_service_client::MyPageServiceClient;
use reserve_proto::notice::v1::notice_service_client::NoticeServiceClient;
use reserve_proto::payment::v1::payment_service_client::PaymentServiceClient;
use reserve_proto::product::v1::product_service_client::ProductServiceClient;
use reserve_proto::reservation::v1::reservation_service_client::ReservationServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Where the services are and how long the gateway waits for them.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// product-svc's gRPC URL.
    pub product_url: String,
    /// reservation-svc's gRPC URL.
    pub reservation_url: String,
    /// payment-svc's gRPC URL.
    pub payment_url: String,
    /// mypage-svc's gRPC URL.
    pub mypage_url: String,
    /// notice-svc's gRPC URL.
    pub notice_url: String,
    /// Deadline of every upstream call.
    pub timeout: Duration,
    /// How often each service's hosts are resolved again (`UPSTREAM_REFRESH_MS`).
    pub refresh: Duration,
    /// How long after its arrival a reservation request is answered at the latest
    /// (`RESERVE_TIMEOUT_MS`): passed on to reservation-svc as the call's deadline, which
    /// ends its product lock early enough to answer in time.
    pub reserve_timeout: Duration,
}

/// One named upstream service.
#[derive(Clone)]
pub struct Upstream {
    /// Its name in readiness reports.
    pub name: &'static str,
    channel: Channel,
}

/// Clients of every upstream service, shared: cheap to clone. Axum clones a handler's state
/// for every request, and cloning the clients themselves (ten channels, each a buffer
/// sender, a URI and an interceptor) was a tenth of the gateway's work per request.
#[derive(Clone)]
pub struct Upstreams(Arc<Clients>);

impl std::ops::Deref for Upstreams {
    type Target = Clients;

    fn deref(&self) -> &Clients {
        &self.0
    }
}

/// The clients [`Upstreams`] shares; a handler clones only the one it calls.
pub struct Clients {
    /// product-svc.
    pub product: ProductServiceClient<TracedChannel>,
    /// reservation-svc.
    pub reservation: ReservationServiceClient<TracedChannel>,
    /// payment-svc.
    pub payment: PaymentServiceClient<TracedChannel>,
    /// mypage-svc (its streams are not bound by the call timeout).
    pub mypage: MyPageServiceClient<TracedChannel>,
    /// notice-svc.
    pub notice: NoticeServiceClient<TracedChannel>,
    all: Vec<Upstream>,
    timeout: Duration,
    reserve_timeout: Duration,
}

impl Upstreams {
    /// Prepares the clients; connects on first use. Must run inside a Tokio runtime (each
    /// client keeps its replicas' addresses current in a background task).
    pub fn connect(config: &UpstreamConfig) -> Result<Self, ConfigError> {
        let channel = |setting: &str, urls: &str| -> Result<Channel, ConfigError> {
            let targets = UpstreamTargets::parse(setting, urls)?;
            let timeout = config.timeout;
            let configure = move |endpoint: tonic::transport::Endpoint| {
                endpoint
                    .connect_timeout(timeout)
                    .timeout(timeout)
                    .tcp_nodelay(true)
            };
            Ok(balanced_channel(targets, configure, config.refresh))
        };
        let product = channel("PRODUCT_SVC_URL", &config.product_url)?;
        let reservation = channel("RESERVATION_SVC_URL", &config.reservation_url)?;
        let payment = channel("PAYMENT_SVC_URL", &config.payment_url)?;
        let mypage = channel("MYPAGE_SVC_URL", &config.mypage_url)?;
        let notice = channel("NOTICE_SVC_URL", &config.notice_url)?;
        Ok(Self(Arc::new(Clients {
            product: ProductServiceClient::with_interceptor(product.clone(), SendTraceContext),
            reservation: ReservationServiceClient::with_interceptor(
                reservation.clone(),
                SendTraceContext,
            ),
            payment: PaymentServiceClient::with_interceptor(payment.clone(), SendTraceContext),
            mypage: MyPageServiceClient::with_interceptor(mypage.clone(), SendTraceContext),
            notice: NoticeServiceClient::with_interceptor(notice.clone(), SendTraceContext),
            all: vec![
                Upstream {
                    name: "product-svc",
                    channel: product,
                },
                Upstream {
                    name: "reservation-svc",
                    channel: reservation,
                },
                Upstream {
                    name: "payment-svc",
                    channel: payment,
                },
                Upstream {
                    name: "mypage-svc",
                    channel: mypage,
                },
                Upstream {
                    name: "notice-svc",
                    channel: notice,
                },
            ],
            timeout: config.timeout,
            reserve_timeout: config.reserve_timeout,
        })))
    }
}

impl Clients {
    /// How long after its arrival a reservation request is answered at the latest.
    pub fn reserve_timeout(&self) -> Duration {
        self.reserve_timeout
    }

    /// Asks every upstream's gRPC health service; `(name, serving)` for each, in order.
    pub async fn health(&self) -> Vec<(&'static str, bool)> {
        let checks = self.all.iter().map(|upstream| async move {
            let mut client = HealthClient::new(upstream.channel.clone());
            let call = client.check(HealthCheckRequest {
                service: String::new(),
            });
            let serving = matches!(
                tokio::time::timeout(self.timeout, call).await,
                Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32
            );
            (upstream.name, serving)
        });
        let mut results = Vec::with_capacity(self.all.len());
        for check in checks {
            results.push(check.await);
        }
        results
    }
}
