//! Identifier newtypes. Each can only be built by parsing (or, in a shell, by `new_random`),
//! so a handler can never mix a taxi id up with a grab id.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a valid {1} (expected a UUID)")]
pub struct InvalidId(pub String, pub &'static str);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh random id. Only shells call this; the domain takes ids as input.
            pub fn new_random() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// Parse a canonical (hyphenated, any case) UUID; fails with [`InvalidId`].
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                uuid::Uuid::try_parse(s)
                    .map(|u| Self(u.to_string()))
                    .map_err(|_| InvalidId(s.chars().take(64).collect(), $what))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(
    /// A ride request.
    GrabId,
    "grab id"
);
uuid_id!(
    /// A payment (one per grab).
    PaymentId,
    "payment id"
);
uuid_id!(
    /// A registered taxi.
    TaxiId,
    "taxi id"
);
uuid_id!(
    /// One assignment of a taxi to a grab.
    AllocationId,
    "allocation id"
);
uuid_id!(
    /// A fare quote the server priced for one rider's trip.
    QuoteId,
    "quote id"
);

/// The id that ties every request, event and log line of one ride together.
/// Comes from `X-Correlation-Id` (1–128 of `[A-Za-z0-9._:-]`) or is generated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationId(String);

/// Why a correlation id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("correlation id must be 1-128 characters of A-Z a-z 0-9 . _ : -")]
pub struct InvalidCorrelationId;

impl CorrelationId {
    /// A fresh correlation id for a request that came without one.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Parse a caller-supplied correlation id; fails with [`InvalidCorrelationId`].
    pub fn parse(s: &str) -> Result<Self, InvalidCorrelationId> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidCorrelationId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CorrelationId {
    type Error = InvalidCorrelationId;
    fn try_from(s: String) -> Result<Self, InvalidCorrelationId> {
        Self::parse(&s)
    }
}

impl From<CorrelationId> for String {
    fn from(id: CorrelationId) -> String {
        id.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_uuids() {
        assert!(GrabId::parse("7f1c1a52-6b0e-4c4f-9f51-1d3c2b9a0e11").is_ok());
        assert!(GrabId::parse("../etc/passwd").is_err());
        assert!(GrabId::parse("").is_err());
    }

    #[test]
    fn ids_are_normalised_to_lower_case() {
        let id = TaxiId::parse("7F1C1A52-6B0E-4C4F-9F51-1D3C2B9A0E11").unwrap();
        assert_eq!(id.as_str(), "7f1c1a52-6b0e-4c4f-9f51-1d3c2b9a0e11");
    }

    #[test]
    fn correlation_ids_refuse_header_injection() {
        assert!(CorrelationId::parse("ride-42.retry_1").is_ok());
        assert!(CorrelationId::parse("a\r\nX-Evil: 1").is_err());
        assert!(CorrelationId::parse(&"x".repeat(129)).is_err());
    }
}
