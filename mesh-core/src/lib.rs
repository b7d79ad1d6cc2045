//! Cross-cutting plumbing shared by every Reserve Mesh binary.
//!
//! Only infrastructure lives here (configuration, telemetry, the database pool, the gRPC
//! server shell, shutdown); domain types stay in their service, so a service can be read
//! top to bottom without this crate knowing anything about products or reservations.

pub mod auth;
pub mod batch_commit;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod db;
pub mod dead_letters;
pub mod event_observability;
pub mod events;
pub mod group_commit;
pub mod grpc_deadline;
pub mod grpc_server;
pub mod ids;
pub mod invalid_protobuf;
pub mod messaging;
pub mod outbox;
pub mod paging;
pub mod prepared;
pub mod redelivery;
pub mod request_log;
pub mod rpc_observability;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod store_error;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod trace_context;
pub mod upstream;

pub use config::ConfigError;
pub use db::{Db, DbConnection, DbError, Migrations};
pub use shutdown::Shutdown;
pub use startup::StartupError;
pub use store_error::{StoreDomain, StoreError};
