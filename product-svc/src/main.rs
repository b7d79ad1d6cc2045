//! product-svc binary: configuration from the environment, run until SIGTERM or Ctrl-C.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mesh_core::telemetry::run("product-svc", 9081, serve()).await
}

async fn serve() -> anyhow::Result<()> {
    let config = product_svc::Config::from_env()?;
    let app = product_svc::App::build(config).await?;
    app.run(mesh_core::Shutdown::on_os_signal()).await?;
    Ok(())
}
