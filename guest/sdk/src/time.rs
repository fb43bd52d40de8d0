//! Arithmetic on the host's integer timestamps (milliseconds since the Unix
//! epoch). There is no clock here on purpose: `now` comes in the request.

use crate::Timestamp;

/// Milliseconds in one minute.
pub const MINUTE_MS: i64 = 60_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds in one day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A duration given in (possibly fractional) hours, as milliseconds.
/// Saturates instead of overflowing on absurd inputs.
pub fn hours(h: f64) -> i64 {
    let ms = h * HOUR_MS as f64;
    if ms.is_nan() {
        0
    } else {
        ms.clamp(i64::MIN as f64, i64::MAX as f64) as i64
    }
}

/// `t + ms`, saturating.
pub fn add(t: Timestamp, ms: i64) -> Timestamp {
    t.saturating_add(ms)
}

/// Hours elapsed from `from` to `to` (negative if `to` is earlier).
pub fn hours_between(from: Timestamp, to: Timestamp) -> f64 {
    to.saturating_sub(from) as f64 / HOUR_MS as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_hours_convert_to_milliseconds() {
        assert_eq!(hours(1.5), 90 * MINUTE_MS);
        assert_eq!(hours(f64::NAN), 0);
        assert_eq!(hours(f64::INFINITY), i64::MAX);
    }

    #[test]
    fn hours_between_is_signed() {
        assert_eq!(hours_between(0, 2 * HOUR_MS), 2.0);
        assert_eq!(hours_between(2 * HOUR_MS, 0), -2.0);
    }
}

/// Formats a timestamp as RFC 3339 UTC (`2026-11-26T12:00:00Z`, with
/// milliseconds only when they are not zero), for messages a human reads.
pub fn rfc3339(t: Timestamp) -> String {
    let secs = t.div_euclid(1000);
    let millis = t.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    if millis == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}Z")
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01
/// (H. Hinnant, "chrono-compatible low-level date algorithms").
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps_like_the_wire() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_694_400_000), "2026-11-26T12:00:00Z");
        assert_eq!(rfc3339(1_795_694_400_250), "2026-11-26T12:00:00.250Z");
        assert_eq!(rfc3339(-1000), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
