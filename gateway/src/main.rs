//! gateway binary: configuration from the environment, run until SIGTERM or Ctrl-C.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mesh_core::telemetry::run("gateway", 9080, serve()).await
}

async fn serve() -> anyhow::Result<()> {
    let config = gateway::Config::from_env()?;
    let app = gateway::App::build(config).await?;
    app.run(mesh_core::Shutdown::on_os_signal()).await?;
    Ok(())
}
