//! notice-svc binary. Its API arrives with the my-page and notifications issue; until then it serves gRPC health and
//! reflection on its port (`GRPC_ADDR`, default `0.0.0.0:8085`) so the mesh's shape, its
//! probes and `script/server` are already in place.

use std::net::SocketAddr;

use mesh_core::config::env_or;
use mesh_core::grpc_server::GrpcShell;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mesh_core::telemetry::init("notice-svc");
    let addr: SocketAddr = env_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 8085)))?;
    let listener = mesh_core::startup::bind(addr).await?;
    tracing::info!(%addr, "notice-svc serving gRPC health only; its API is not built yet");
    GrpcShell::new(&[])?
        .serve(listener, mesh_core::Shutdown::on_os_signal())
        .await?;
    Ok(())
}
