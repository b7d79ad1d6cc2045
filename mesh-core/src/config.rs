//! Typed configuration from environment variables.
//!
//! Each binary parses its whole configuration once at startup into a struct, using these
//! helpers, so a typo in a variable fails the start with a message that names the variable
//! instead of surfacing later as a strange runtime error.

use std::str::FromStr;
use std::time::Duration;

/// A configuration variable was set to something that does not parse. It names the variable
/// and shows its value with any credential in it masked ([`redact_credentials`]): config
/// errors end up in logs.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    name: String,
    value: String,
    reason: String,
}

impl ConfigError {
    /// A variable whose value was refused by a later check (a URL that does not parse, say).
    pub fn new(name: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            value: redact_credentials(value),
            reason: reason.into(),
        }
    }
}

/// `value` with the credentials a URL may carry masked: the password of `user:password@`,
/// and the query string (where tokens and passwords travel), e.g.
/// `nats://app:s3cret@nats:4222` → `nats://app:***@nats:4222`.
pub fn redact_credentials(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((before, _)) => (before, Some("?***")),
        None => (rest, None),
    };
    let (authority, path) = match authority_and_path.find('/') {
        Some(at) => authority_and_path.split_at(at),
        None => (authority_and_path, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{path}{}", query.unwrap_or_default())
}

/// Reads `name` and parses it, or returns `default` when it is unset or empty.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parse_or(name, optional_env(name), default)
}

/// `value` of variable `name` parsed, or `default` when there is none: [`env_or`] without
/// the environment, so that its parsing is tested without mutating the process's variables
/// (`set_var` races every other thread's reads of the environment).
fn parse_or<T>(name: &str, value: Option<String>, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match value {
        None => Ok(default),
        Some(value) => value
            .parse()
            .map_err(|err: T::Err| ConfigError::new(name, &value, err.to_string())),
    }
}

/// Reads `name` as a whole number of milliseconds, or returns `default`.
pub fn env_millis(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    env_or(name, default_ms).map(Duration::from_millis)
}

/// Reads `name`; `None` when unset or empty (an empty value means "not configured").
pub fn optional_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_urls_are_masked() {
        use super::redact_credentials;
        assert_eq!(
            redact_credentials("nats://app:s3cret@nats:4222"),
            "nats://app:***@nats:4222"
        );
        assert_eq!(
            redact_credentials("postgres://reserve:pw@db:5432/product?sslmode=require&password=x"),
            "postgres://reserve:***@db:5432/product?***"
        );
        assert_eq!(
            redact_credentials("nats://t0ken@nats:4222"),
            "nats://***@nats:4222"
        );
        assert_eq!(
            redact_credentials("http://product:8081"),
            "http://product:8081"
        );
        assert_eq!(redact_credentials("json"), "json");
    }

    #[test]
    fn config_errors_do_not_show_passwords() {
        let err = super::ConfigError::new("NATS_URL", "nats://app:s3cret@nats:4222", "refused");
        let shown = err.to_string();
        assert!(
            shown.contains("NATS_URL") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    use super::*;

    #[test]
    fn unset_variable_gives_the_default() {
        let value: u16 = env_or("MESH_CORE_TEST_SURELY_UNSET", 7).expect("default");
        assert_eq!(value, 7);
    }

    #[test]
    fn invalid_value_names_the_variable() {
        let err = parse_or::<u16>("GRPC_PORT", Some("eighty".into()), 80).expect_err("must fail");
        assert!(err.to_string().contains("GRPC_PORT=\"eighty\""), "{err}");
        assert_eq!(
            parse_or::<u16>("GRPC_PORT", Some("81".into()), 80).expect("parses"),
            81
        );
    }
}
