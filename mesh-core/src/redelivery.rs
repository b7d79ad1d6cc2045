//! When a consumer tries a failed event again, and when it stops trying.
//!
//! A failure is either passing (the database is down, the pool timed out: `HandleError::Retry`)
//! or permanent (the event can never apply). A passing failure is no reason to give an event
//! up: a consumer that dead-letters after a fixed number of tries turns a half-minute database
//! outage into events lost for good. So a passing failure is retried with exponential back-off
//! for as long as it lasts, bounded only by the event's age: an event still failing a day
//! after it happened is dead-lettered with the reason, where an operator can replay it.
//! Pure: the consumer loop asks, this answers.

use std::time::Duration;

/// How a consumer spaces the retries of an event that keeps failing for a passing reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedeliveryPolicy {
    /// Delay before the second delivery; each later one doubles it.
    pub first_delay: Duration,
    /// The longest delay between two deliveries.
    pub max_delay: Duration,
    /// An event older than this that still fails is dead-lettered.
    pub max_age: Duration,
}

impl Default for RedeliveryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do with an event whose delivery number `attempt` failed for a passing reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Ask JetStream to deliver it again after this delay.
    RetryIn(Duration),
    /// Dead-letter it, for this reason.
    GiveUp(String),
}

impl RedeliveryPolicy {
    /// The delay after failed delivery number `attempt` (1-based): `first_delay`, doubled per
    /// attempt, at most `max_delay`.
    pub fn delay(&self, attempt: u64) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(20);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }

    /// Decides the fate of an event `age` old whose delivery `attempt` failed with `reason`.
    pub fn after_passing_failure(&self, attempt: u64, age: Duration, reason: &str) -> AfterFailure {
        if age > self.max_age {
            return AfterFailure::GiveUp(format!(
                "still failing {}s after the event occurred ({attempt} deliveries), last: {reason}",
                age.as_secs()
            ));
        }
        AfterFailure::RetryIn(self.delay(attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_first_up_to_the_cap() {
        let policy = RedeliveryPolicy::default();
        let delays: Vec<u64> = (1..=9)
            .map(|attempt| policy.delay(attempt).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(policy.delay(u64::MAX), Duration::from_secs(30));
    }

    #[test]
    fn a_passing_failure_is_retried_however_many_times_it_failed() {
        let policy = RedeliveryPolicy::default();
        assert_eq!(
            policy.after_passing_failure(10_000, Duration::from_secs(3600), "db down"),
            AfterFailure::RetryIn(Duration::from_secs(30))
        );
    }

    #[test]
    fn an_event_past_the_maximum_age_is_given_up_with_the_reason() {
        let policy = RedeliveryPolicy {
            max_age: Duration::from_secs(60),
            ..RedeliveryPolicy::default()
        };
        match policy.after_passing_failure(7, Duration::from_secs(61), "pool timed out") {
            AfterFailure::GiveUp(reason) => {
                assert!(reason.contains("pool timed out"), "{reason}");
                assert!(reason.contains("7 deliveries"), "{reason}");
            }
            other => panic!("expected to give up, got {other:?}"),
        }
    }
}
