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
    ///
    /// The common shape (`YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)`) is parsed by
    /// hand, because a decision request carries a dozen timestamps and the
    /// general parser costs more than the policy call; anything else falls
    /// back to the `time` crate's full RFC 3339 parser. Both give the same
    /// instant (tested below).
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(t) = fast::parse(s.as_bytes()) {
            return Some(Timestamp(t));
        }
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
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

impl Timestamp {
    /// RFC 3339 in UTC into `buf`, with milliseconds only when they are not
    /// zero; None for years outside 0000-9999.
    fn format_into(self, buf: &mut [u8; 24]) -> Option<&str> {
        let (secs, ms) = (self.0.div_euclid(1000), self.0.rem_euclid(1000));
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = fast::civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let put = |buf: &mut [u8; 24], at: usize, v: i64, width: usize| {
            let mut v = v;
            for i in (0..width).rev() {
                buf[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(buf, 0, y, 4);
        buf[4] = b'-';
        put(buf, 5, m, 2);
        buf[7] = b'-';
        put(buf, 8, d, 2);
        buf[10] = b'T';
        put(buf, 11, rem / 3600, 2);
        buf[13] = b':';
        put(buf, 14, rem % 3600 / 60, 2);
        buf[16] = b':';
        put(buf, 17, rem % 60, 2);
        let len = if ms == 0 {
            buf[19] = b'Z';
            20
        } else {
            buf[19] = b'.';
            put(buf, 20, ms, 3);
            buf[23] = b'Z';
            24
        };
        std::str::from_utf8(&buf[..len]).ok()
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with milliseconds only when they are not zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 24];
        match self.format_into(&mut buf) {
            Some(s) => f.write_str(s),
            None => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        match self.format_into(&mut buf) {
            Some(s) => serializer.serialize_str(s),
            None => serializer.collect_str(self),
        }
    }
}

/// The hand-written fast paths.
mod fast {
    /// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
    /// civil-from-days).
    pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn digits(b: &[u8]) -> Option<i64> {
        let mut v = 0i64;
        for &c in b {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    }

    fn days_in_month(y: i64, m: i64) -> i64 {
        match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            _ => 28,
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS[.f+](Z|±HH:MM)` as ms since the epoch; None for
    /// anything else (leap seconds, lowercase, other separators), which the
    /// general parser then judges.
    pub(super) fn parse(s: &[u8]) -> Option<i64> {
        if s.len() < 20
            || s[4] != b'-'
            || s[7] != b'-'
            || s[10] != b'T'
            || s[13] != b':'
            || s[16] != b':'
        {
            return None;
        }
        let (y, mo, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
        let (h, mi, se) = (
            digits(&s[11..13])?,
            digits(&s[14..16])?,
            digits(&s[17..19])?,
        );
        if !(1..=12).contains(&mo)
            || d < 1
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || se > 59
        {
            return None;
        }
        let mut i = 19;
        let mut ms = 0i64;
        if s[i] == b'.' {
            let start = i + 1;
            let mut end = start;
            while end < s.len() && s[end].is_ascii_digit() {
                end += 1;
            }
            if end == start {
                return None;
            }
            let frac = &s[start..end.min(start + 3)];
            ms = digits(frac)? * [100, 10, 1][frac.len() - 1];
            i = end;
        }
        let offset_min = match s.get(i..)? {
            b"Z" => 0,
            [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
                let (oh, om) = (digits(&[*oh1, *oh2])?, digits(&[*om1, *om2])?);
                if oh > 23 || om > 59 {
                    return None;
                }
                let v = oh * 60 + om;
                if *sign == b'-' { -v } else { v }
            }
            _ => return None,
        };
        let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
        Some(secs * 1000 + ms)
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
    fn the_fast_parser_agrees_with_the_general_one() {
        // A deterministic sweep over dates, times, fractions and offsets.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..20_000 {
            let (y, mo) = (next(10_000), next(12) + 1);
            let d = next(31) + 1;
            let (h, mi, se) = (next(24), next(60), next(60));
            let frac = match next(4) {
                0 => String::new(),
                1 => format!(".{}", next(10)),
                2 => format!(".{:03}", next(1000)),
                _ => format!(".{:09}", next(1_000_000_000)),
            };
            let off = match next(3) {
                0 => "Z".to_string(),
                1 => format!("+{:02}:{:02}", next(24), next(60)),
                _ => format!("-{:02}:{:02}", next(24), next(60)),
            };
            let s = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{frac}{off}");
            let general = OffsetDateTime::parse(&s, &Rfc3339)
                .ok()
                .and_then(|t| i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok());
            let fast = fast::parse(s.as_bytes());
            if let Some(f) = fast {
                assert_eq!(Some(f), general, "{s}");
            } else {
                // Whatever the fast path declines, the general parser decides.
                assert_eq!(Timestamp::parse(&s).map(|t| t.0), general, "{s}");
            }
        }
    }

    #[test]
    fn formatting_round_trips_through_parsing() {
        for ms in [
            0,
            1,
            999,
            1_795_694_400_000,
            1_795_694_400_250,
            253_402_300_799_999,
            -86_400_000,
        ] {
            let t = Timestamp(ms);
            assert_eq!(Timestamp::parse(&t.to_string()), Some(t), "{t}");
        }
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        assert!(Timestamp::parse("2026-11-26").is_none());
        assert!(Timestamp::parse("yesterday").is_none());
        let err = serde_json::from_str::<Timestamp>("\"26/11/2026\"").unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }
}
