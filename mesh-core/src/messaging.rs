//! A service's connection to the event backbone, wired once at startup: the NATS client, the
//! outbox relay, and one durable consumer per subscription, all stopped by the same
//! [`Shutdown`].

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::task::JoinSet;

use crate::config::{env_millis, env_or};
use crate::consumer::{ConsumerPolicy, EventConsumer, EventHandler, Subscription};
use crate::db::Db;
use crate::outbox::{OutboxRelay, OutboxSignal};
use crate::redelivery::RedeliveryPolicy;
use crate::{ConfigError, Shutdown};

/// Messaging settings from the environment.
#[derive(Clone, Debug)]
pub struct MessagingConfig {
    /// `NATS_URL`, default `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// `CONSUMER_RETRY_DELAY_MS` (default 500, doubling per retry up to
    /// `CONSUMER_RETRY_MAX_DELAY_MS`, 30000), `CONSUMER_MAX_RETRY_AGE_MS` (86400000: an event
    /// still failing a day after it occurred is dead-lettered), `CONSUMER_ACK_WAIT_MS` (10000),
    /// `CONSUMER_BATCH` (64), `CONSUMER_STALL_AFTER_MS` (15000).
    pub consumer: ConsumerPolicy,
}

impl MessagingConfig {
    /// Reads the settings.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = ConsumerPolicy::default();
        let redelivery = RedeliveryPolicy {
            first_delay: env_millis("CONSUMER_RETRY_DELAY_MS", defaults.redelivery.first_delay)?,
            max_delay: env_millis("CONSUMER_RETRY_MAX_DELAY_MS", defaults.redelivery.max_delay)?,
            max_age: env_millis("CONSUMER_MAX_RETRY_AGE_MS", defaults.redelivery.max_age)?,
        };
        Ok(Self {
            nats_url: env_or("NATS_URL", "nats://127.0.0.1:4222".to_owned())?,
            consumer: ConsumerPolicy {
                redelivery,
                ack_wait: env_millis("CONSUMER_ACK_WAIT_MS", defaults.ack_wait)?,
                batch: env_or("CONSUMER_BATCH", defaults.batch)?.max(1),
                stall_after: env_millis("CONSUMER_STALL_AFTER_MS", defaults.stall_after)?
                    .max(Duration::from_millis(300)),
            },
        })
    }
}

/// The event backbone as one service sees it.
pub struct Messaging {
    db: Db,
    js: jetstream::Context,
    signal: OutboxSignal,
    policy: ConsumerPolicy,
    subscriptions: Vec<(Subscription, Arc<dyn EventHandler>)>,
}

impl Messaging {
    /// Connects to NATS (without waiting for it to be up) for `service`'s database `db`.
    pub async fn connect(
        config: &MessagingConfig,
        service: &str,
        db: Db,
    ) -> Result<Self, ConfigError> {
        let js = crate::events::connect(&config.nats_url, service)
            .await
            .map_err(|err| ConfigError::new("NATS_URL", &config.nats_url, err.to_string()))?;
        Ok(Self {
            db,
            js,
            signal: OutboxSignal::default(),
            policy: config.consumer.clone(),
            subscriptions: Vec::new(),
        })
    }

    /// The NATS client, for core (unkept) subjects such as signals between replicas.
    pub fn client(&self) -> async_nats::Client {
        self.js.client()
    }

    /// Wakes the relay; hand it to whatever commits outbox rows.
    pub fn signal(&self) -> OutboxSignal {
        self.signal.clone()
    }

    /// Adds a durable consumer named `durable` of `subject`, applying events with `handler`.
    pub fn subscribe(&mut self, durable: &str, subject: String, handler: Arc<dyn EventHandler>) {
        self.subscriptions.push((
            Subscription {
                durable: durable.to_owned(),
                filter_subject: subject,
            },
            handler,
        ));
    }

    /// Starts the relay and the consumers; they run until `shutdown`.
    pub fn spawn(self, shutdown: &Shutdown) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        let relay = OutboxRelay::new(self.db.clone(), self.js.clone(), self.signal.clone());
        tasks.spawn(relay.run(shutdown.clone()));
        for (subscription, handler) in self.subscriptions {
            let consumer = EventConsumer::new(
                self.db.clone(),
                self.js.clone(),
                subscription,
                handler,
                self.signal.clone(),
                self.policy.clone(),
            );
            tasks.spawn(consumer.run(shutdown.clone()));
        }
        tasks
    }
}

/// Waits for background tasks to finish, at most `limit` (a stuck task must not block exit).
pub async fn drain(mut tasks: JoinSet<()>, limit: Duration) {
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(limit, all).await.is_err() {
        tracing::warn!("background tasks did not stop in time");
    }
}
