//! Fault injection on `ReserveProduct`: the original system's "product service made slow on
//! purpose", done as a switch. Off by default; set at start from the environment
//! (`FAULT_RESERVE_LATENCY_MS=400..620`, `FAULT_RESERVE_ERROR_RATE=0.1`) or at run time through
//! `ProductAdminService/SetReserveFaults`, and logged loudly whenever it is on.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use mesh_core::ConfigError;
use mesh_core::config::optional_env;

/// The faults in force.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReserveFaults {
    /// Shortest injected delay.
    pub latency_min: Duration,
    /// Longest injected delay.
    pub latency_max: Duration,
    /// Share of calls failed with UNAVAILABLE, 0.0 to 1.0.
    pub error_rate: f64,
}

impl ReserveFaults {
    /// Checks and builds faults: min ≤ max, rate within 0..=1.
    pub fn new(
        latency_min: Duration,
        latency_max: Duration,
        error_rate: f64,
    ) -> Result<Self, String> {
        if latency_min > latency_max {
            return Err(format!(
                "latency range {latency_min:?}..{latency_max:?} is empty"
            ));
        }
        if !(0.0..=1.0).contains(&error_rate) {
            return Err(format!(
                "error rate must be within 0.0 and 1.0, got {error_rate}"
            ));
        }
        Ok(Self {
            latency_min,
            latency_max,
            error_rate,
        })
    }

    /// Reads `FAULT_RESERVE_LATENCY_MS` (`MIN..MAX` or one value) and
    /// `FAULT_RESERVE_ERROR_RATE`; off when unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        let (min, max) = match optional_env("FAULT_RESERVE_LATENCY_MS") {
            None => (0, 0),
            Some(raw) => parse_range(&raw)
                .map_err(|reason| ConfigError::new("FAULT_RESERVE_LATENCY_MS", &raw, reason))?,
        };
        let rate = match optional_env("FAULT_RESERVE_ERROR_RATE") {
            None => 0.0,
            Some(raw) => raw.trim().parse::<f64>().map_err(|err| {
                ConfigError::new("FAULT_RESERVE_ERROR_RATE", &raw, err.to_string())
            })?,
        };
        Self::new(Duration::from_millis(min), Duration::from_millis(max), rate).map_err(|reason| {
            ConfigError::new("FAULT_RESERVE_*", &format!("{min}..{max} {rate}"), reason)
        })
    }

    /// Whether any fault is injected.
    pub fn is_on(&self) -> bool {
        !self.latency_max.is_zero() || self.error_rate > 0.0
    }

    /// The delay for one call, given a uniform draw in [0, 1).
    pub fn delay(&self, draw: f64) -> Duration {
        let span = self.latency_max - self.latency_min;
        self.latency_min + span.mul_f64(draw.clamp(0.0, 1.0))
    }

    /// Whether one call fails, given a uniform draw in [0, 1).
    pub fn fails(&self, draw: f64) -> bool {
        draw < self.error_rate
    }
}

fn parse_range(raw: &str) -> Result<(u64, u64), String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?} is not a whole number of milliseconds"))
    };
    match raw.split_once("..") {
        Some((min, max)) => Ok((number(min)?, number(max)?)),
        None => number(raw).map(|value| (value, value)),
    }
}

/// The switch shared by the gRPC handlers and the admin API.
#[derive(Clone, Default, Debug)]
pub struct FaultSwitch(Arc<RwLock<ReserveFaults>>);

impl FaultSwitch {
    /// A switch starting with `faults`.
    pub fn new(faults: ReserveFaults) -> Self {
        let switch = Self::default();
        switch.set(faults);
        switch
    }

    /// The faults in force.
    pub fn get(&self) -> ReserveFaults {
        *self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the faults, loudly.
    pub fn set(&self, faults: ReserveFaults) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = faults;
        if faults.is_on() {
            tracing::warn!(
                latency_min_ms = faults.latency_min.as_millis() as u64,
                latency_max_ms = faults.latency_max.as_millis() as u64,
                error_rate = faults.error_rate,
                "FAULT INJECTION ON for ReserveProduct"
            );
        } else {
            tracing::info!("fault injection off");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("400..620"), Ok((400, 620)));
        assert_eq!(parse_range("500"), Ok((500, 500)));
        assert!(parse_range("fast").is_err());
    }

    #[test]
    fn delays_stay_in_the_range_and_errors_follow_the_rate() {
        let faults =
            ReserveFaults::new(Duration::from_millis(400), Duration::from_millis(620), 0.25)
                .expect("valid");
        assert!(faults.is_on());
        assert_eq!(faults.delay(0.0), Duration::from_millis(400));
        assert_eq!(faults.delay(0.5), Duration::from_millis(510));
        assert!(faults.delay(0.999) <= Duration::from_millis(620));
        assert!(faults.fails(0.1));
        assert!(!faults.fails(0.3));
    }

    #[test]
    fn off_by_default_and_invalid_settings_refused() {
        assert!(!ReserveFaults::default().is_on());
        assert!(
            ReserveFaults::new(Duration::from_millis(9), Duration::from_millis(1), 0.0).is_err()
        );
        assert!(ReserveFaults::new(Duration::ZERO, Duration::ZERO, 1.5).is_err());
    }
}
