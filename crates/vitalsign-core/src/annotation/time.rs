//! RFC 3339 timestamps, strict and small: parsing (`2026-05-01T12:00:00Z`, with a fraction of
//! a second and a `Z` or `±HH:MM` offset) and formatting (UTC, milliseconds, `Z`), and the
//! `since` and `start`/`end` values of the HTTP endpoints (RFC 3339 or unix seconds).
//!
//! Written here rather than taken from `humantime` (which comes only with the `stats`
//! feature): annotations are always built, and these hundred lines are all they need.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// `n` ASCII digits at the start of `text`, as a number, and the rest.
fn digits(text: &[u8], n: usize) -> Option<(u32, &[u8])> {
    if text.len() < n || !text[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = text[..n]
        .iter()
        .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
    Some((value, &text[n..]))
}

fn expect(text: &[u8], byte: u8) -> Option<&[u8]> {
    text.strip_prefix(&[byte])
}

/// Parses an RFC 3339 timestamp (`2026-05-01T12:00:00Z`, `2026-05-01t12:00:00.250+02:00`;
/// `T` or a space between date and time). Times before 1970 are refused (`None`), as are
/// leap seconds and anything else that is not a valid date and time.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let s = text.as_bytes();
    let (year, s) = digits(s, 4)?;
    let (month, s) = digits(expect(s, b'-')?, 2)?;
    let (day, s) = digits(expect(s, b'-')?, 2)?;
    let s = match s.first() {
        Some(b'T' | b't' | b' ') => &s[1..],
        _ => return None,
    };
    let (hour, s) = digits(s, 2)?;
    let (minute, s) = digits(expect(s, b':')?, 2)?;
    let (second, mut s) = digits(expect(s, b':')?, 2)?;
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut nanos = 0u32;
    if let Some(rest) = s.strip_prefix(b".") {
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, d) in rest[..n].iter().enumerate().take(9) {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
        }
        s = &rest[n..];
    }
    let offset_seconds: i64 = match s {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (hours, rest) = digits(rest, 2)?;
            let (minutes, rest) = digits(expect(rest, b':')?, 2)?;
            if !rest.is_empty() || hours > 23 || minutes > 59 {
                return None;
            }
            let offset = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

/// Formats a time as RFC 3339 in UTC with milliseconds: `2026-05-01T12:00:00.250Z`. Times
/// before 1970 are written as the epoch.
pub(crate) fn format_rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs() as i64;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// A time given as RFC 3339 text or as unix seconds (`1767225600`, `1767225600.5`).
pub(crate) fn parse_time(text: &str) -> Option<SystemTime> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return unix_seconds(text.parse::<f64>().ok()?);
    }
    parse_rfc3339(text)
}

/// Unix seconds (finite, not negative, before year 10000) as a time.
pub(crate) fn unix_seconds(seconds: f64) -> Option<SystemTime> {
    // 9999-12-31T23:59:59Z
    const LAST: f64 = 253_402_300_799.0;
    if !seconds.is_finite() || !(0.0..=LAST).contains(&seconds) {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs_f64(seconds))
}

/// Nanoseconds since the Unix epoch (0 before it).
#[cfg_attr(
    not(any(feature = "prometheus", feature = "statsd", feature = "influx-base")),
    allow(dead_code)
)]
pub(crate) fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(seconds, nanos)
    }

    #[test]
    fn rfc3339_parses_strictly() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(at(0, 0)));
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00Z"),
            Some(at(1_767_225_600, 0))
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T02:00:00.5+02:00"),
            Some(at(1_767_225_600, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2025-12-31t19:00:00.123456789-05:00"),
            Some(at(1_767_225_600, 123_456_789))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29 12:00:00z"),
            Some(at(1_709_208_000, 0))
        );
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0200",
            "2026-01-01T00:00:00+02:00 ",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+00:01",
            "２０２６-01-01T00:00:00Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_formats_in_utc_with_milliseconds() {
        assert_eq!(format_rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(at(1_767_225_600, 500_000_000)),
            "2026-01-01T00:00:00.500Z"
        );
        assert_eq!(
            format_rfc3339(at(1_709_164_800 + 86_399, 999_999_999)),
            "2024-02-29T23:59:59.999Z"
        );
        // Every day of four centuries round-trips.
        for day in (0..146_097 * 4).step_by(7) {
            let time = at(day * 86_400 + 3_723, 4_000_000);
            assert_eq!(
                parse_rfc3339(&format_rfc3339(time)),
                Some(time),
                "day {day}"
            );
        }
    }

    /// The small parser agrees with `humantime` (the RFC 3339 parser of `/stats`).
    #[cfg(feature = "stats")]
    #[test]
    fn rfc3339_agrees_with_humantime() {
        let mut seconds = 1u64;
        while seconds < 253_402_300_799 {
            let time = at(seconds, (seconds % 1000) as u32 * 1_000_000);
            let text = humantime::format_rfc3339_millis(time).to_string();
            assert_eq!(format_rfc3339(time), text);
            assert_eq!(parse_rfc3339(&text), humantime::parse_rfc3339(&text).ok());
            seconds = seconds * 3 + 7;
        }
    }

    #[test]
    fn times_are_rfc3339_or_unix_seconds() {
        assert_eq!(parse_time("1767225600"), Some(at(1_767_225_600, 0)));
        assert_eq!(
            parse_time("1767225600.25"),
            Some(at(1_767_225_600, 250_000_000))
        );
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z"),
            Some(at(1_767_225_600, 0))
        );
        for bad in [
            "",
            "-1",
            "1e3",
            "1.2.3",
            ".",
            "99999999999999",
            "NaN",
            "now",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
        assert_eq!(unix_nanos(at(2, 5)), 2_000_000_005);
    }
}
