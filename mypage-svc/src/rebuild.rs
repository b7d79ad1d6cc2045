//! Rebuilding my page from the start of the event stream: the read model is disposable.
//!
//! `mypage-svc rebuild` empties the `my_page` table of the database it is given, then replays
//! every reservation and payment event still in JetStream through the same projection the
//! service runs, using one-off consumers that it deletes afterwards. Stop mypage-svc first
//! (or point `DATABASE_URL` at a new, empty database and switch the service over after).

use std::sync::Arc;

use mesh_core::consumer::{EventConsumer, Subscription};
use mesh_core::events::{self, EVENTS_PREFIX};
use mesh_core::outbox::OutboxSignal;
use mesh_core::{Db, StartupError};
use tokio::sync::broadcast;

use crate::Config;
use crate::events::MyPageProjection;
use crate::fanout::ChangeFeed;
use crate::store;

/// What a rebuild did.
#[derive(Debug)]
pub struct RebuildReport {
    /// Entries removed first.
    pub cleared: usize,
    /// Events that changed an entry (a stale or repeated one does not).
    pub applied: usize,
}

/// Runs the rebuild.
pub async fn rebuild(config: Config) -> Result<RebuildReport, StartupError> {
    let db = Db::connect(
        &config.service.db,
        store::MIGRATIONS,
        config.service.db_pool_size,
    )
    .await?;
    let js = events::connect(&config.service.messaging.nats_url, "mypage-rebuild")
        .await
        .map_err(|err| nats_error(&config, err))?;
    let cleared = db.run(store::clear).await?;
    let (changes, _) = broadcast::channel(1);
    // Replicas still running (pointed at this database) re-read what their watchers show.
    let projection = Arc::new(MyPageProjection::new(ChangeFeed::new(changes, js.client())));
    let run = mesh_core::clock::now_ms();
    let mut applied = 0;
    for aggregate in ["reservation", "payment"] {
        let consumer = EventConsumer::new(
            db.clone(),
            js.clone(),
            Subscription {
                durable: format!("mypage-rebuild-{run}-{aggregate}"),
                filter_subject: format!("{EVENTS_PREFIX}.{aggregate}.>"),
            },
            projection.clone(),
            OutboxSignal::default(),
            config.service.messaging.consumer.clone(),
        );
        applied += consumer
            .catch_up()
            .await
            .map_err(|err| nats_error(&config, err))?;
        if let Err(err) = consumer.delete().await {
            tracing::warn!(%err, "could not delete the one-off rebuild consumer");
        }
    }
    Ok(RebuildReport { cleared, applied })
}

fn nats_error(config: &Config, err: impl std::fmt::Display) -> StartupError {
    mesh_core::ConfigError::new(
        "NATS_URL",
        &config.service.messaging.nats_url,
        err.to_string(),
    )
    .into()
}
