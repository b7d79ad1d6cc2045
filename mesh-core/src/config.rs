//! Typed configuration from environment variables.
//!
//! Each binary parses its whole configuration once at startup into a struct, using these
//! helpers, so a typo in a variable fails the start with a message that names the variable
//! instead of surfacing later as a strange runtime error.

use std::str::FromStr;
use std::time::Duration;

/// A configuration variable was set to something that does not parse.
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
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Reads `name` and parses it, or returns `default` when it is unset or empty.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional_env(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|err: T::Err| ConfigError {
            name: name.to_owned(),
            reason: err.to_string(),
            value,
        }),
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
    use super::*;

    #[test]
    fn unset_variable_gives_the_default() {
        let value: u16 = env_or("MESH_CORE_TEST_SURELY_UNSET", 7).expect("default");
        assert_eq!(value, 7);
    }

    #[test]
    fn invalid_value_names_the_variable() {
        // SAFETY: this test is the only reader of this variable.
        unsafe { std::env::set_var("MESH_CORE_TEST_BAD_PORT", "eighty") };
        let err = env_or::<u16>("MESH_CORE_TEST_BAD_PORT", 80).expect_err("must fail");
        assert!(err.to_string().contains("MESH_CORE_TEST_BAD_PORT"), "{err}");
    }
}
