//! mypage-svc binary. Its API arrives with the my-page issue; until then it serves gRPC health and
//! reflection on its port (`GRPC_ADDR`, default `0.0.0.0:8084`) so the mesh's shape, its
//! probes and `script/server` are already in place.

use std::net::SocketAddr;

use mesh_core::config::env_or;
use mesh_core::grpc_server::GrpcShell;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mesh_core::telemetry::init("mypage-svc");
    let addr: SocketAddr = env_or("GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 8084)))?;
    let listener = mesh_core::startup::bind(addr).await?;
    tracing::info!(%addr, "mypage-svc serving gRPC health only; its API is not built yet");
    GrpcShell::new(&[])?
        .serve(listener, mesh_core::Shutdown::on_os_signal())
        .await?;
    Ok(())
}
