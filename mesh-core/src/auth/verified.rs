//! Tokens already verified, so a client that sends the same bearer token with every request
//! (as clients do until it expires) costs one signature check, not one per request and hop.
//!
//! An entry is trusted for at most [`TRUST_FOR`] and never past the token's `exp`, so a key
//! withdrawn from the key set stops admitting its tokens within that time, as it would once
//! the key set is re-read. The cache is bounded: when full, it starts afresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::caller::Caller;
use super::dev_keys::unix_now;

/// How long a verified token is trusted without checking it again.
pub const TRUST_FOR: Duration = Duration::from_secs(30);

/// Verified tokens kept at most (a few MiB).
const MAX_ENTRIES: usize = 10_000;

/// Verified tokens and who they stand for.
#[derive(Debug, Default)]
pub(super) struct VerifiedTokens {
    entries: Mutex<HashMap<String, Verified>>,
}

#[derive(Debug)]
struct Verified {
    caller: Caller,
    /// Unix seconds after which the entry no longer counts.
    until: u64,
}

impl VerifiedTokens {
    /// The caller `token` stood for, if it was verified recently and has not expired.
    pub(super) fn get(&self, token: &str) -> Option<Caller> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let verified = entries.get(token)?;
        (unix_now() < verified.until).then(|| verified.caller.clone())
    }

    /// Remembers that `token`, which expires at `exp` (Unix seconds), stands for `caller`.
    pub(super) fn remember(&self, token: &str, caller: &Caller, exp: u64) {
        let until = exp.min(unix_now() + TRUST_FOR.as_secs());
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            token.to_owned(),
            Verified {
                caller: caller.clone(),
                until,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn a_token_is_trusted_until_it_expires_or_for_a_short_while() {
        let cache = VerifiedTokens::default();
        let kim = Caller::new("kim", [Role::Buyer]);
        assert_eq!(cache.get("t1"), None);
        cache.remember("t1", &kim, unix_now() + 3600);
        assert_eq!(cache.get("t1"), Some(kim.clone()));
        cache.remember("t2", &kim, unix_now().saturating_sub(1));
        assert_eq!(cache.get("t2"), None, "expired");
        let entries = cache.entries.lock().expect("lock");
        assert!(entries["t1"].until <= unix_now() + TRUST_FOR.as_secs());
    }

    #[test]
    fn a_full_cache_starts_afresh() {
        let cache = VerifiedTokens::default();
        let kim = Caller::new("kim", [Role::Buyer]);
        for n in 0..=MAX_ENTRIES {
            cache.remember(&format!("t{n}"), &kim, unix_now() + 60);
        }
        assert_eq!(cache.entries.lock().expect("lock").len(), 1);
    }
}
