//! payment-svc binary: configuration from the environment, run until SIGTERM or Ctrl-C.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mesh_core::telemetry::run("payment-svc", 9083, serve()).await
}

async fn serve() -> anyhow::Result<()> {
    let config = payment_svc::Config::from_env()?;
    let app = payment_svc::App::build(config).await?;
    app.run(mesh_core::Shutdown::on_os_signal()).await?;
    Ok(())
}
