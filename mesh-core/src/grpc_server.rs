//! The gRPC server shell every service shares: standard health checking (`grpc.health.v1`,
//! used by Kubernetes `grpc:` probes and `grpcurl`), server reflection in both protocol
//! versions (grpcurl 1.8 still asks for `v1alpha`), and graceful shutdown that turns health to
//! NOT_SERVING before draining in-flight calls. Every call is traced and measured
//! ([`crate::rpc_observability`]). Connections are told to go away after
//! [`MAX_CONNECTION_AGE`], so long-lived clients rebalance over replicas added since.

use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use tower::layer::util::{Identity, Stack};

use std::sync::Arc;

use crate::Shutdown;
use crate::auth::Authenticator;
use crate::auth::grpc::AuthLayer;
use crate::invalid_protobuf::InvalidProtobufLayer;
use crate::rpc_observability::RpcObservabilityLayer;

/// The server's router: every call passes [`RpcObservabilityLayer`] (span + RED metrics),
/// then [`AuthLayer`] (the caller's token verified), then [`InvalidProtobufLayer`]
/// (undecodable requests answered INVALID_ARGUMENT).
pub type MeshRouter =
    Router<Stack<InvalidProtobufLayer, Stack<AuthLayer, Stack<RpcObservabilityLayer, Identity>>>>;

/// How long a client connection is served before the server asks it to go away (HTTP/2
/// GOAWAY): its calls in flight and open streams (a my-page watch) finish on it, new calls
/// open a connection that the client's balancer may place on a replica added since
/// ([`crate::upstream`]). Without it a client connected before a scale-up would never reach
/// the new pods. No forced close after it: tonic's grace setting skips the graceful step.
pub const MAX_CONNECTION_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// A server already carrying health and reflection; add the service's own API to `router`.
pub struct GrpcShell {
    /// Reports serving status; set the service to SERVING once it is ready.
    pub health: HealthReporter,
    /// The router to add the service's API to.
    pub router: MeshRouter,
}

/// Failure to build the reflection service (a broken embedded descriptor set).
#[derive(Debug, thiserror::Error)]
#[error("cannot build gRPC reflection: {0}")]
pub struct ReflectionError(String);

impl GrpcShell {
    /// A server with health and reflection; reflection advertises `services` (fully
    /// qualified names such as `reserve.product.v1.ProductService`) plus health. Callers
    /// are verified by `authenticator`.
    pub fn new(
        services: &[&str],
        authenticator: Arc<Authenticator>,
    ) -> Result<Self, ReflectionError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(reserve_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        let mut v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(reserve_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in services {
            v1 = v1.with_service_name(*name);
            v1alpha = v1alpha.with_service_name(*name);
        }
        let v1 = v1
            .build_v1()
            .map_err(|err| ReflectionError(err.to_string()))?;
        let v1alpha = v1alpha
            .build_v1alpha()
            .map_err(|err| ReflectionError(err.to_string()))?;
        let router = Server::builder()
            .max_connection_age(MAX_CONNECTION_AGE)
            .layer(RpcObservabilityLayer)
            .layer(AuthLayer::new(authenticator))
            .layer(InvalidProtobufLayer)
            .add_service(health_service)
            .add_service(v1)
            .add_service(v1alpha);
        Ok(Self { health, router })
    }

    /// Serves on `listener` until `shutdown` fires, then reports NOT_SERVING and lets calls
    /// in flight finish before returning.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> Result<(), tonic::transport::Error> {
        let Self { health, router } = self;
        let drain = async move {
            shutdown.requested().await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
        };
        // TCP_NODELAY on every accepted connection (tonic sets it only on listeners it binds
        // itself): a response's trailers must not wait for the client's delayed ACK.
        let incoming = TcpListenerStream::new(listener).map(|accepted| {
            accepted.inspect(|stream| {
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(%err, "cannot set TCP_NODELAY");
                }
            })
        });
        router.serve_with_incoming_shutdown(incoming, drain).await
    }
}
