//! Errors that stop a service from starting or serving, shared so every `main` reads alike.

use crate::ConfigError;
use crate::db::DbError;
use crate::grpc_server::ReflectionError;

/// Why a service could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configuration variable is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The gRPC reflection service could not be built.
    #[error(transparent)]
    Reflection(#[from] ReflectionError),
    /// The HTTP server failed while serving.
    #[error("HTTP server failed: {0}")]
    HttpServe(std::io::Error),
    /// The gRPC server failed while serving.
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Binds `addr` (port 0 picks a free port, which tests rely on).
pub async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, StartupError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}
