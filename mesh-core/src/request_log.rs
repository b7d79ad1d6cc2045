//! Idempotency keys: a retried request is not a new request.
//!
//! A client that timed out (or got "try again shortly") cannot know whether its first request
//! took effect; with an idempotency key it can simply send it again. The service claims the
//! key in the same transaction as the change the request makes and stores the answer with it,
//! so a retry finds either nothing (the first attempt left no trace: run it) or the claim
//! (answer as the first time, or resume what the first attempt left half done). The same key
//! with a different request is refused: the key names one request, not a slot.
//!
//! Keys are scoped by operation (`place`, `pay`, `cancel`) and kept at least [`KEEP`].

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};

use crate::DbConnection;

/// How long a key is kept.
pub const KEEP: Duration = Duration::from_secs(26 * 3600);

/// The longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is new and now claimed by this transaction.
    New,
    /// An earlier request claimed the key.
    Seen(Recorded),
}

/// A request recorded under a key.
#[derive(Debug, PartialEq, Eq, QueryableByName)]
pub struct Recorded {
    /// What the request was.
    #[diesel(sql_type = Text)]
    pub fingerprint: String,
    /// What it acts on (the reservation it placed, the payment it paid).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub target_id: Option<i64>,
    /// The encoded answer, once the request completed.
    #[diesel(sql_type = Nullable<Binary>)]
    pub response: Option<Vec<u8>>,
}

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Empty, too long, or not visible ASCII.
    #[error("idempotency key must be 1 to {MAX_KEY_LEN} visible ASCII characters")]
    Malformed,
}

/// Checks a client's key: 1 to [`MAX_KEY_LEN`] visible ASCII characters; empty means none.
pub fn parse_key(raw: &str) -> Result<Option<&str>, KeyError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > MAX_KEY_LEN || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(KeyError::Malformed);
    }
    Ok(Some(raw))
}

/// The key as stored: the client's key within its caller's own namespace, so two users who
/// happen to pick the same key never see each other's answers. Keys are visible ASCII, so
/// the space cannot occur in one and the scoping is unambiguous.
pub fn scoped_key(caller: &str, key: &str) -> String {
    format!("{caller} {key}")
}

impl From<KeyError> for tonic::Status {
    fn from(err: KeyError) -> Self {
        tonic::Status::invalid_argument(err.to_string())
    }
}

/// Why a request cannot go ahead under its key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyConflict {
    /// The key was used before for a different request.
    #[error("idempotency key {0:?} was already used for a different request")]
    Reused(String),
    /// The first request with this key has not finished (a retry overtook it).
    #[error("the first request with idempotency key {0:?} is still in progress; try again shortly")]
    InProgress(String),
}

/// ALREADY_EXISTS for a reused key (the gateway answers 422), UNAVAILABLE ("try again
/// shortly") for one still in progress.
impl From<KeyConflict> for tonic::Status {
    fn from(err: KeyConflict) -> Self {
        match err {
            KeyConflict::Reused(_) => tonic::Status::already_exists(err.to_string()),
            KeyConflict::InProgress(_) => tonic::Status::unavailable(err.to_string()),
        }
    }
}

/// A client's idempotency key for one request whose answer is a `T`, and how that answer is
/// recorded (encoded as the client receives it).
pub struct RequestKey<T> {
    /// The key, checked by [`parse_key`].
    pub key: String,
    /// Encodes the answer for the record.
    pub encode: fn(&T) -> Vec<u8>,
}

/// How a request with an optional key ended.
#[derive(Debug)]
pub enum Answer<T> {
    /// Done now.
    Now(T),
    /// Done by an earlier request with the same key: its recorded answer.
    Before(Vec<u8>),
}

/// For a request done in one transaction: claims `key` (`Ok(None)`: go ahead, then
/// [`complete`] in the same transaction) or returns the answer recorded under it. A claim and
/// its answer commit together, so an unanswered claim belongs to a transaction still open.
pub fn claim_once<E>(
    conn: &mut DbConnection,
    operation: &str,
    key: &str,
    fingerprint: &str,
    target_id: Option<i64>,
) -> Result<Option<Vec<u8>>, E>
where
    E: From<diesel::result::Error> + From<KeyConflict>,
{
    match claim(conn, operation, key, fingerprint, target_id)? {
        Claim::New => Ok(None),
        Claim::Seen(seen) if seen.fingerprint != fingerprint => {
            Err(KeyConflict::Reused(key.to_owned()).into())
        }
        Claim::Seen(Recorded {
            response: Some(answer),
            ..
        }) => Ok(Some(answer)),
        Claim::Seen(_) => Err(KeyConflict::InProgress(key.to_owned()).into()),
    }
}

fn storage_key(operation: &str, key: &str) -> String {
    format!("{operation}:{key}")
}

/// Claims `key` for a request of `operation` described by `fingerprint`, acting on
/// `target_id`, or returns what an earlier request recorded under it. Call it inside the
/// transaction of the change: a concurrent request with the same key waits for that
/// transaction, then sees its claim.
pub fn claim(
    conn: &mut DbConnection,
    operation: &str,
    key: &str,
    fingerprint: &str,
    target_id: Option<i64>,
) -> Result<Claim, diesel::result::Error> {
    let stored = storage_key(operation, key);
    let inserted = diesel::sql_query(
        "INSERT INTO request_log (request_key, fingerprint, target_id, created_at_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_key) DO NOTHING",
    )
    .bind::<Text, _>(&stored)
    .bind::<Text, _>(fingerprint)
    .bind::<Nullable<BigInt>, _>(target_id)
    .bind::<BigInt, _>(crate::clock::now_ms())
    .execute(conn)?;
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let recorded = diesel::sql_query(
        "SELECT fingerprint, target_id, response FROM request_log WHERE request_key = $1",
    )
    .bind::<Text, _>(&stored)
    .get_result(conn)?;
    Ok(Claim::Seen(recorded))
}

/// Records what the request that claimed `key` acts on, before it has an answer (a request
/// done in several steps, whose retry must find its first attempt).
pub fn set_target(
    conn: &mut DbConnection,
    operation: &str,
    key: &str,
    target_id: i64,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query("UPDATE request_log SET target_id = $1 WHERE request_key = $2")
        .bind::<BigInt, _>(target_id)
        .bind::<Text, _>(storage_key(operation, key))
        .execute(conn)?;
    Ok(())
}

/// Stores the answer of the request that claimed `key` (in the transaction of its change).
pub fn complete(
    conn: &mut DbConnection,
    operation: &str,
    key: &str,
    target_id: Option<i64>,
    response: &[u8],
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "UPDATE request_log SET response = $1, target_id = $2 WHERE request_key = $3",
    )
    .bind::<Binary, _>(response)
    .bind::<Nullable<BigInt>, _>(target_id)
    .bind::<Text, _>(storage_key(operation, key))
    .execute(conn)?;
    Ok(())
}

/// Forgets `key`: its request left nothing behind, so a retry runs afresh.
pub fn forget(
    conn: &mut DbConnection,
    operation: &str,
    key: &str,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query("DELETE FROM request_log WHERE request_key = $1")
        .bind::<Text, _>(storage_key(operation, key))
        .execute(conn)?;
    Ok(())
}

/// Forgets keys older than [`KEEP`]; returns how many.
pub fn purge(conn: &mut DbConnection) -> Result<usize, diesel::result::Error> {
    let keep_ms = i64::try_from(KEEP.as_millis()).unwrap_or(i64::MAX);
    diesel::sql_query("DELETE FROM request_log WHERE created_at_ms < $1")
        .bind::<BigInt, _>(crate::clock::now_ms().saturating_sub(keep_ms))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert_eq!(parse_key(""), Ok(None));
        assert_eq!(
            parse_key("8e0f-4c1a_retry.1"),
            Ok(Some("8e0f-4c1a_retry.1"))
        );
        assert_eq!(parse_key("has space"), Err(KeyError::Malformed));
        assert_eq!(parse_key("ünicode"), Err(KeyError::Malformed));
        assert_eq!(parse_key(&"k".repeat(256)), Err(KeyError::Malformed));
        assert!(parse_key(&"k".repeat(255)).is_ok());
    }
}
