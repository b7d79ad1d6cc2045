//! How a binary verifies callers, read from the environment once at start.

use std::path::PathBuf;
use std::time::Duration;

use crate::ConfigError;
use crate::config::{env_or, optional_env};

/// Whether tokens are required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Production: every call that acts for someone needs a verified bearer token.
    Jwt,
    /// Local use: tokens are verified when present, and a call without one acts as the
    /// built-in `anonymous` buyer and seller. Logged as a warning at start and every minute.
    Dev,
}

/// Where the token-signing public keys (a JWKS document) come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `AUTH_JWKS_URL`: fetched over HTTP(S), re-fetched on an unknown `kid`.
    Url(String),
    /// `AUTH_JWKS_FILE`: read from disk, re-read on an unknown `kid`.
    File(PathBuf),
    /// No keys (dev mode without a key file): every token is refused, calls without one
    /// are anonymous.
    None,
}

/// Everything about verifying callers.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `AUTH_MODE`: `jwt` (default) or `dev`.
    pub mode: AuthMode,
    /// `AUTH_JWKS_URL` or `AUTH_JWKS_FILE` (one is required in `jwt` mode).
    pub keys: KeySource,
    /// `AUTH_ISSUER`: the `iss` every token must carry (required in `jwt` mode; dev mode's
    /// default is [`DEV_ISSUER`]).
    pub issuer: String,
    /// `AUTH_AUDIENCE`: an `aud` every token must carry (default `reserve-mesh`).
    pub audience: String,
    /// `AUTH_ROLES_CLAIM`: the claim holding the roles, a list or a space-separated string
    /// (default `roles`).
    pub roles_claim: String,
    /// `AUTH_CLOCK_SKEW_SECS`: leeway on `exp` and `nbf` (default 30 s).
    pub clock_skew: Duration,
    /// Least time between two reloads of the key set (30 s; shorter only in tests).
    pub refresh_every: Duration,
}

/// The issuer of the tokens `script/token` signs in dev mode.
pub const DEV_ISSUER: &str = "reserve-mesh-dev";
/// The audience tokens carry unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "reserve-mesh";

impl AuthConfig {
    /// Reads `AUTH_*`. In `jwt` mode a missing issuer or key source fails the start, naming
    /// the variable: a mesh never runs open by accident.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mode = match optional_env("AUTH_MODE").as_deref() {
            None | Some("jwt") => AuthMode::Jwt,
            Some("dev") => AuthMode::Dev,
            Some(other) => {
                return Err(ConfigError::new(
                    "AUTH_MODE",
                    other,
                    "expected jwt (verified tokens required) or dev (local use)",
                ));
            }
        };
        let keys = match (
            optional_env("AUTH_JWKS_URL"),
            optional_env("AUTH_JWKS_FILE"),
        ) {
            (Some(url), None) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::new(
                        "AUTH_JWKS_URL",
                        &url,
                        "expected an http(s) URL",
                    ));
                }
                KeySource::Url(url)
            }
            (None, Some(file)) => KeySource::File(PathBuf::from(file)),
            (Some(url), Some(_)) => {
                return Err(ConfigError::new(
                    "AUTH_JWKS_URL",
                    &url,
                    "set AUTH_JWKS_URL or AUTH_JWKS_FILE, not both",
                ));
            }
            (None, None) if mode == AuthMode::Dev => KeySource::None,
            (None, None) => {
                return Err(ConfigError::new(
                    "AUTH_JWKS_URL",
                    "",
                    "AUTH_MODE=jwt needs the token-signing keys: set AUTH_JWKS_URL or \
                     AUTH_JWKS_FILE (or AUTH_MODE=dev for local use)",
                ));
            }
        };
        let issuer = match (optional_env("AUTH_ISSUER"), mode) {
            (Some(issuer), _) => issuer,
            (None, AuthMode::Dev) => DEV_ISSUER.to_owned(),
            (None, AuthMode::Jwt) => {
                return Err(ConfigError::new(
                    "AUTH_ISSUER",
                    "",
                    "AUTH_MODE=jwt needs the issuer every token must name (the iss claim)",
                ));
            }
        };
        Ok(Self {
            mode,
            keys,
            issuer,
            audience: env_or("AUTH_AUDIENCE", DEFAULT_AUDIENCE.to_owned())?,
            roles_claim: env_or("AUTH_ROLES_CLAIM", "roles".to_owned())?,
            clock_skew: Duration::from_secs(env_or("AUTH_CLOCK_SKEW_SECS", 30)?),
            refresh_every: Duration::from_secs(30),
        })
    }

    /// Dev mode with the keys in `jwks_file`, if any: what in-process tests run with.
    pub fn dev(jwks_file: Option<PathBuf>) -> Self {
        Self {
            mode: AuthMode::Dev,
            keys: jwks_file.map_or(KeySource::None, KeySource::File),
            issuer: DEV_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            roles_claim: "roles".to_owned(),
            clock_skew: Duration::from_secs(30),
            refresh_every: Duration::from_secs(30),
        }
    }
}
