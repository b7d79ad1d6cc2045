//! Paging for every list: a page size (default 50, at most 500) and an opaque page token.
//!
//! A token holds only a position (the last id the previous page showed) and is bound to the
//! listing it came from: an HMAC over the listing's scope (which list, for whom, filtered how)
//! and the position. A token that was altered, made up, or taken from another listing is
//! refused with INVALID_ARGUMENT. Authorization never depends on it: every page is filtered
//! for its caller afresh, so even a forged position shows nothing the caller may not see.
//!
//! The key is `PAGE_TOKEN_SECRET` (read once, at first use); without it a built-in key is
//! used, which keeps tokens tamper-evident against accidents but forgeable by someone who
//! reads this source. Replicas of a service must share the key to share tokens.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Rows on a page when the caller names no size.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Most rows a page may hold.
pub const MAX_PAGE_SIZE: i64 = 500;

const VERSION: u8 = 1;
const MAC_BYTES: usize = 16;
const BUILT_IN_KEY: &[u8] = b"reserve-mesh page tokens: set PAGE_TOKEN_SECRET in production";

/// A page to read: at most `limit` rows after position `after` (none: from the start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to answer.
    pub limit: i64,
    /// The position the previous page ended at.
    pub after: Option<i64>,
}

/// Why a page request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The size is outside 1..=500 (0 means the default).
    #[error("page_size must be 1 to {MAX_PAGE_SIZE} (0 or absent: {DEFAULT_PAGE_SIZE}), got {0}")]
    Size(i64),
    /// The token was not issued for this listing, or was altered.
    #[error("page_token is not a token this listing issued; start again without one")]
    Token,
}

impl From<PageError> for tonic::Status {
    fn from(err: PageError) -> Self {
        tonic::Status::invalid_argument(err.to_string())
    }
}

impl PageRequest {
    /// The page asked for by `page_size` and `page_token` in the listing `scope` (e.g.
    /// `"reservations:kim"`: everything that decides what the listing shows).
    pub fn parse(page_size: i32, page_token: &str, scope: &str) -> Result<Self, PageError> {
        let limit = match i64::from(page_size) {
            0 => DEFAULT_PAGE_SIZE,
            size @ 1..=MAX_PAGE_SIZE => size,
            other => return Err(PageError::Size(other)),
        };
        let after = match page_token {
            "" => None,
            token => Some(open(key(), scope, token)?),
        };
        Ok(Self { limit, after })
    }

    /// Rows to read: one more than the page, to learn whether another page follows.
    pub fn probe_limit(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts `rows` (read with [`PageRequest::probe_limit`]) to the page and makes the next
    /// page's token from the last row's position (`position_of`); empty when this is the last
    /// page.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        scope: &str,
        position_of: impl Fn(&T) -> i64,
    ) -> (Vec<T>, String) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        if rows.len() <= limit {
            return (rows, String::new());
        }
        rows.truncate(limit);
        let next = rows
            .last()
            .map(|row| issue(key(), scope, position_of(row)))
            .unwrap_or_default();
        (rows, next)
    }
}

fn key() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        crate::config::optional_env("PAGE_TOKEN_SECRET")
            .map_or_else(|| BUILT_IN_KEY.to_vec(), String::into_bytes)
    })
}

fn mac(key: &[u8], scope: &str, position: i64) -> [u8; MAC_BYTES] {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
        <Hmac<Sha256> as KeyInit>::new_from_slice(BUILT_IN_KEY).expect("a valid key")
    });
    mac.update(&[VERSION]);
    mac.update(scope.as_bytes());
    mac.update(&[0]);
    mac.update(&position.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut short = [0u8; MAC_BYTES];
    short.copy_from_slice(&full[..MAC_BYTES]);
    short
}

/// The token for `position` in listing `scope`.
fn issue(key: &[u8], scope: &str, position: i64) -> String {
    let mut bytes = Vec::with_capacity(1 + 8 + MAC_BYTES);
    bytes.push(VERSION);
    bytes.extend_from_slice(&position.to_be_bytes());
    bytes.extend_from_slice(&mac(key, scope, position));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The position in `token`, if this listing issued it unaltered.
fn open(key: &[u8], scope: &str, token: &str) -> Result<i64, PageError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| PageError::Token)?;
    let [version, rest @ ..] = bytes.as_slice() else {
        return Err(PageError::Token);
    };
    if *version != VERSION || rest.len() != 8 + MAC_BYTES {
        return Err(PageError::Token);
    }
    let (position, given) = rest.split_at(8);
    let position = i64::from_be_bytes(position.try_into().map_err(|_| PageError::Token)?);
    let expected = mac(key, scope, position);
    // Constant-time comparison: the token's validity must not leak byte by byte.
    let differs = expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differs != 0 {
        return Err(PageError::Token);
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_in_its_own_listing_and_unaltered() {
        let token = issue(b"k", "reservations:kim", 42);
        assert_eq!(open(b"k", "reservations:kim", &token), Ok(42));
        assert_eq!(
            open(b"k", "reservations:lee", &token),
            Err(PageError::Token)
        );
        assert_eq!(
            open(b"other", "reservations:kim", &token),
            Err(PageError::Token)
        );
        let mut altered = URL_SAFE_NO_PAD.decode(&token).unwrap();
        altered[8] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(altered);
        assert_eq!(
            open(b"k", "reservations:kim", &altered),
            Err(PageError::Token)
        );
        for garbage in ["", "!!", "AAAA", &"A".repeat(200)] {
            assert_eq!(
                open(b"k", "x", garbage),
                Err(PageError::Token),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn sizes_default_and_cap() {
        assert_eq!(
            PageRequest::parse(0, "", "s").unwrap().limit,
            DEFAULT_PAGE_SIZE
        );
        assert_eq!(PageRequest::parse(500, "", "s").unwrap().limit, 500);
        assert_eq!(PageRequest::parse(501, "", "s"), Err(PageError::Size(501)));
        assert_eq!(PageRequest::parse(-1, "", "s"), Err(PageError::Size(-1)));
    }

    #[test]
    fn finishing_a_page_cuts_the_probe_row_and_points_past_the_last_shown() {
        let page = PageRequest::parse(2, "", "s").unwrap();
        let (rows, next) = page.finish(vec![1, 2, 3], "s", |row| *row);
        assert_eq!(rows, vec![1, 2]);
        assert_eq!(PageRequest::parse(2, &next, "s").unwrap().after, Some(2));
        let (rows, next) = page.finish(vec![1, 2], "s", |row| *row);
        assert_eq!((rows, next), (vec![1, 2], String::new()));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A token opens to the position it was issued for, in its listing only.
        #[test]
        fn tokens_round_trip_in_their_own_scope(scope in "\\PC{0,40}", other in "\\PC{0,40}", position in any::<i64>()) {
            let token = issue(b"key", &scope, position);
            prop_assert_eq!(open(b"key", &scope, &token), Ok(position));
            if other != scope {
                prop_assert_eq!(open(b"key", &other, &token), Err(PageError::Token));
            }
        }

        /// Any change to a token, and any made-up string, is refused; nothing panics.
        #[test]
        fn altered_and_made_up_tokens_are_refused(position in any::<i64>(), at in 0usize..25, bit in 0u8..8, garbage in "\\PC{0,80}") {
            let mut bytes = URL_SAFE_NO_PAD.decode(issue(b"key", "s", position)).unwrap();
            bytes[at] ^= 1 << bit;
            prop_assert_eq!(open(b"key", "s", &URL_SAFE_NO_PAD.encode(bytes)), Err(PageError::Token));
            // A random string is a valid token only by forging a 128-bit MAC.
            prop_assert_eq!(open(b"key", "s", &garbage), Err(PageError::Token));
        }

        /// Sizes: 0 is the default, 1..=500 as given, anything else refused.
        #[test]
        fn page_sizes(size in any::<i32>()) {
            let parsed = PageRequest::parse(size, "", "s");
            match size {
                0 => prop_assert_eq!(parsed.map(|p| p.limit), Ok(DEFAULT_PAGE_SIZE)),
                1..=500 => prop_assert_eq!(parsed.map(|p| p.limit), Ok(i64::from(size))),
                _ => prop_assert_eq!(parsed, Err(PageError::Size(i64::from(size)))),
            }
        }
    }
}
