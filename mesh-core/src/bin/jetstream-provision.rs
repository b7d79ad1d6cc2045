//! Creates the JetStream streams of Reserve Mesh (idempotent) on `NATS_URL` and exits:
//! the one provisioning step that `script/server`, the tests and the Helm hook job run.
//! Services also provision on start, so this step makes a fresh cluster ready before any of
//! them is.

use std::time::Duration;

use mesh_core::config::env_or;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = mesh_core::telemetry::init_job("jetstream-provision")?;
    let url: String = env_or("NATS_URL", "nats://127.0.0.1:4222".to_owned())?;
    let client = tokio::time::timeout(Duration::from_secs(10), async_nats::connect(&url))
        .await
        .map_err(|_| anyhow::anyhow!("NATS at {url} did not answer within 10 s"))?
        .map_err(|err| anyhow::anyhow!("cannot connect to NATS at {url}: {err}"))?;
    let js = async_nats::jetstream::new(client);
    mesh_core::events::provision_patiently(&js, mesh_core::events::PROVISION_PATIENCE)
        .await
        .map_err(|err| anyhow::anyhow!("cannot provision JetStream at {url}: {err}"))?;
    tracing::info!(
        %url,
        events = mesh_core::events::EVENTS_STREAM,
        dead_letters = mesh_core::events::DLQ_STREAM,
        "JetStream streams ready"
    );
    Ok(())
}
