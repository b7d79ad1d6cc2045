//! mypage-svc binary. `mypage-svc` serves; `mypage-svc rebuild` rebuilds the read model from
//! the start of the event stream into its database, then exits (see `rebuild.rs`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mesh_core::telemetry::run("mypage-svc", 9084, serve_or_rebuild()).await
}

async fn serve_or_rebuild() -> anyhow::Result<()> {
    let config = mypage_svc::Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None => {
            let app = mypage_svc::App::build(config).await?;
            app.run(mesh_core::Shutdown::on_os_signal()).await?;
        }
        Some("rebuild") => {
            let report = mypage_svc::rebuild::rebuild(config).await?;
            tracing::info!(
                cleared = report.cleared,
                applied = report.applied,
                "my page rebuilt"
            );
            println!(
                "rebuilt my page: cleared {} entries, applied {} events",
                report.cleared, report.applied
            );
        }
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; use no argument to serve, or `rebuild`")
        }
    }
    Ok(())
}
