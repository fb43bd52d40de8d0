//! RFC 3339 timestamps on the wire, integer milliseconds across the sandbox.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time as milliseconds since the Unix epoch (UTC).
///
/// Parsed from RFC 3339 by the host so that policies never see a string
/// they would have to parse, and never read a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses an RFC 3339 string (`2026-11-26T12:00:00Z`, any offset).
    pub fn parse(s: &str) -> Option<Self> {
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).ok().map(Timestamp)
    }

    /// The current wall-clock time. Only the host calls this (decision ids,
    /// records); a decision's `now` always comes from the request.
    pub fn now() -> Self {
        let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        Timestamp(ms as i64)
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with milliseconds only when they are not zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
            return write!(f, "{}ms", self.0);
        };
        let (y, mo, d) = (t.year(), t.month() as u8, t.day());
        let (h, mi, s) = (t.hour(), t.minute(), t.second());
        let ms = t.millisecond();
        if ms == 0 {
            write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
        } else {
            write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;

        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).ok_or_else(|| {
                    E::custom(format_args!(
                        "expected an RFC 3339 timestamp such as 2026-11-26T12:00:00Z, found \"{v}\""
                    ))
                })
            }
        }

        deserializer.deserialize_str(TimestampVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets_to_the_same_instant() {
        let a = Timestamp::parse("2026-11-26T12:00:00Z").unwrap();
        let b = Timestamp::parse("2026-11-26T13:00:00+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.millis(), 1_795_694_400_000);
    }

    #[test]
    fn formats_as_utc_rfc3339() {
        assert_eq!(
            Timestamp(1_795_694_400_000).to_string(),
            "2026-11-26T12:00:00Z"
        );
        assert_eq!(
            Timestamp(1_795_694_400_250).to_string(),
            "2026-11-26T12:00:00.250Z"
        );
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        assert!(Timestamp::parse("2026-11-26").is_none());
        assert!(Timestamp::parse("yesterday").is_none());
        let err = serde_json::from_str::<Timestamp>("\"26/11/2026\"").unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }
}
