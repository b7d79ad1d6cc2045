//! Identity and access: bearer JWTs verified against a JWKS key set, turned into a
//! [`Caller`] (the token's `sub` and roles) whose rules every service and the gateway apply
//! the same way.
//!
//! - [`caller`]: who is calling and the pure rules of what they may do.
//! - [`config`]: `AUTH_*` from the environment; `jwt` mode (default) or `dev` mode.
//! - [`key_set`]: the JWKS document, re-read on an unknown key id at most every 30 s.
//! - [`verifier`]: `Authorization: Bearer …` → [`Caller`].
//! - [`verified`]: tokens verified moments ago, so a reused token costs one signature check.
//! - [`grpc`]: the server layer that does it for every gRPC call.
//! - [`dev_keys`]: dev mode's local issuer (`script/token`), also used by tests.

pub mod caller;
pub mod config;
pub mod dev_keys;
pub mod grpc;
pub mod key_set;
pub mod verified;
pub mod verifier;

pub use caller::{ANONYMOUS, Caller, Denied, Role};
pub use config::{AuthConfig, AuthMode, KeySource};
pub use verifier::Authenticator;

/// Why a caller could not be identified.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AuthError {
    /// No token where one is needed: 401 / UNAUTHENTICATED.
    #[error("this call needs a bearer token (Authorization: Bearer <token>)")]
    Missing,
    /// A token that does not verify: 401 / UNAUTHENTICATED. Never contains the token.
    #[error("{0}")]
    Invalid(String),
    /// The signing keys cannot be had right now: 503 / UNAVAILABLE, try again.
    #[error("cannot verify tokens right now: {0}")]
    KeysUnavailable(String),
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::KeysUnavailable(_) => tonic::Status::unavailable(err.to_string()),
            _ => tonic::Status::unauthenticated(err.to_string()),
        }
    }
}

impl From<Denied> for tonic::Status {
    fn from(denied: Denied) -> Self {
        tonic::Status::permission_denied(denied.0)
    }
}

/// Repeats dev mode's warning every minute until `shutdown`: a process left in dev mode says
/// so in every stretch of its log, not only in its first lines.
pub async fn remind_of_dev_mode(shutdown: crate::Shutdown) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.requested() => return,
        }
        tracing::warn!(
            "AUTH_MODE=dev: requests without a token act as `anonymous`; never expose this mesh"
        );
    }
}
