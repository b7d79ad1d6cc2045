//! The caller's deadline, as a server sees it: the `grpc-timeout` request header.
//!
//! tonic's server stops awaiting a handler once the caller's timeout passes, but work the
//! handler handed to a blocking thread (a database transaction) runs on and may commit for a
//! caller that has already given up. A handler that must not do that reads the deadline here
//! and checks it before committing.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

/// The instant the caller stops waiting, from `grpc-timeout` (counted from now, the closest
/// the server can know); `None` when the caller set none or sent an unreadable value.
pub fn deadline_of(metadata: &MetadataMap) -> Option<Instant> {
    let raw = metadata.get("grpc-timeout")?.to_str().ok()?;
    parse_timeout(raw).map(|timeout| Instant::now() + timeout)
}

/// Parses the wire format of `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`
/// for milliseconds, `u`, `n`).
fn parse_timeout(raw: &str) -> Option<Duration> {
    let unit = raw.chars().last()?;
    let digits = &raw[..raw.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(value * 3600),
        'M' => Duration::from_secs(value * 60),
        'S' => Duration::from_secs(value),
        'm' => Duration::from_millis(value),
        'u' => Duration::from_micros(value),
        'n' => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_of_the_wire_format_is_read() {
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout("4S"), Some(Duration::from_secs(4)));
        assert_eq!(parse_timeout("950m"), Some(Duration::from_millis(950)));
        assert_eq!(parse_timeout("70u"), Some(Duration::from_micros(70)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn malformed_values_are_ignored() {
        for raw in ["", "m", "123456789m", "12x", "-5m", "1.5S", "5é"] {
            assert_eq!(parse_timeout(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn the_deadline_counts_from_now() {
        let mut metadata = MetadataMap::new();
        assert_eq!(deadline_of(&metadata), None);
        metadata.insert("grpc-timeout", "500m".parse().expect("ascii"));
        let deadline = deadline_of(&metadata).expect("a deadline");
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_millis(500) && left > Duration::from_millis(400));
    }
}
