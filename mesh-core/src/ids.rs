//! Database ids as they arrive from the wire: proto3 sends a missing id as 0, so every id is
//! checked to be positive once, at the edge, and travels as an [`Id`] after that.

use std::fmt;

/// A positive database id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(i64);

/// An id that is zero or negative.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be a positive number, got {raw}")]
pub struct InvalidId {
    /// Which id ("product id").
    pub what: &'static str,
    /// What was given.
    pub raw: i64,
}

impl Id {
    /// Accepts positive ids only; `what` names the id in the error.
    pub fn parse(raw: i64, what: &'static str) -> Result<Self, InvalidId> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(InvalidId { what, raw })
        }
    }

    /// The raw value, for the store and the wire.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<InvalidId> for tonic::Status {
    fn from(err: InvalidId) -> Self {
        tonic::Status::invalid_argument(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_positive() {
        assert_eq!(
            Id::parse(0, "product id").map_err(|e| e.to_string()),
            Err("product id must be a positive number, got 0".to_owned())
        );
        assert!(Id::parse(-3, "product id").is_err());
        assert_eq!(Id::parse(3, "product id").map(Id::get), Ok(3));
    }
}
