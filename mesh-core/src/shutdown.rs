//! Graceful shutdown as one small, cloneable type.
//!
//! Every long-running task holds a [`Shutdown`] and selects on [`Shutdown::requested`], so
//! one SIGTERM (Kubernetes) or Ctrl-C (a terminal) stops accepting work everywhere at once
//! while requests in flight finish.

use tokio::sync::watch;

/// A shutdown signal that any number of tasks can wait for.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
    sender: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that fires only when [`Shutdown::trigger`] is called.
    pub fn new() -> Self {
        let (sender, receiver) = watch::channel(false);
        Self {
            receiver,
            sender: std::sync::Arc::new(sender),
        }
    }

    /// A signal that also fires on SIGTERM or Ctrl-C.
    pub fn on_os_signal() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_os_signal().await;
            tracing::info!("shutdown signal received, draining");
            trigger.trigger();
        });
        shutdown
    }

    /// Asks every holder to stop.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether shutdown was asked for already.
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Completes once shutdown is asked for (at once if it already was).
    pub async fn requested(&self) {
        let mut receiver = self.receiver.clone();
        // An error means every sender is gone, which can only happen at process exit.
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

async fn wait_for_os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                tokio::select! {
                    _ = sigterm.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let shutdown = Shutdown::new();
        let waiter = shutdown.clone();
        let task = tokio::spawn(async move { waiter.requested().await });
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        task.await.expect("waiter finishes");
        assert!(shutdown.is_triggered());
    }
}
