//! Instants as auditors type them and as exports print them: RFC 3339 or Unix
//! seconds in, RFC 3339 with milliseconds out. The log stores Unix milliseconds.

use crate::clock::Civil;

/// Why a time argument could not be read. The message repeats the input and shows
/// both accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{input}' is not a time: {what}; use RFC 3339 (2026-11-25T10:00:00Z, 2026-11-25T11:00:00+01:00) \
     or Unix seconds (1795600800)"
)]
#[non_exhaustive]
pub struct TimeParseError {
    pub input: String,
    pub what: String,
}

/// Parses RFC 3339 (`2026-11-25T10:00:00Z`, fractions and offsets allowed; a bare
/// date means its midnight UTC) or Unix seconds (`1795600800`, `1795600800.5`) into
/// Unix milliseconds. Sub-millisecond digits are dropped (toward the past).
pub fn parse_instant(input: &str) -> Result<i64, TimeParseError> {
    let s = input.trim();
    let fail = |what: &str| TimeParseError { input: input.to_string(), what: what.to_string() };
    if s.is_empty() {
        return Err(fail("it is empty"));
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') && !s[1..].contains('-') {
        return parse_unix_seconds(s).ok_or_else(|| fail("not a number of seconds"));
    }
    parse_rfc3339(s).map_err(|what| fail(&what))
}

fn parse_unix_seconds(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let ms = secs.checked_mul(1000)?.checked_add(frac_ms(frac))?;
    Some(if neg { -ms } else { ms })
}

/// The first three digits of a fraction as milliseconds.
fn frac_ms(frac: &str) -> i64 {
    let mut ms = 0;
    for (i, b) in frac.bytes().take(3).enumerate() {
        ms += i64::from(b - b'0') * [100, 10, 1][i];
    }
    ms
}

fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize, name: &str| -> Result<i64, String> {
        let part = s.get(from..from + len).ok_or_else(|| format!("{name} is missing"))?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("{name} '{part}' is not {len} digits"));
        }
        Ok(part.parse::<i64>().expect("digits"))
    };
    let sep = |at: usize, want: &[u8], name: &str| -> Result<(), String> {
        match b.get(at) {
            Some(c) if want.contains(c) => Ok(()),
            _ => Err(format!("expected {name} at character {}", at + 1)),
        }
    };
    let year = num(0, 4, "year")?;
    sep(4, b"-", "'-' after the year")?;
    let month = num(5, 2, "month")?;
    sep(7, b"-", "'-' after the month")?;
    let day = num(8, 2, "day")?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range 01-12"));
    }
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=days_in_month).contains(&day) {
        return Err(format!("day {day} is out of range for {year}-{month:02}"));
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Ok(days * 86_400_000);
    }
    sep(10, b"Tt ", "'T' between date and time")?;
    let hour = num(11, 2, "hour")?;
    sep(13, b":", "':' after the hour")?;
    let minute = num(14, 2, "minute")?;
    sep(16, b":", "':' after the minutes")?;
    let second = num(17, 2, "second")?;
    if hour > 23 || minute > 59 {
        return Err(format!("time {hour:02}:{minute:02} is out of range"));
    }
    if second > 59 {
        return Err(format!("second {second} is out of range (leap seconds are not supported)"));
    }
    let mut at = 19;
    let mut ms = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return Err("a fraction of a second needs digits after '.'".into());
        }
        ms = frac_ms(&s[start..end]);
        at = end;
    }
    let offset_min = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            let oh = num(at + 1, 2, "offset hours")?;
            sep(at + 3, b":", "':' in the offset")?;
            let om = num(at + 4, 2, "offset minutes")?;
            if oh > 23 || om > 59 {
                return Err(format!("offset {oh:02}:{om:02} is out of range"));
            }
            let minutes = oh * 60 + om;
            if sign == b'+' { minutes } else { -minutes }
        }
        Some(_) => return Err("expected 'Z' or an offset like +01:00 at the end".into()),
        None => return Err("the time zone is missing: end with 'Z' or an offset like +01:00".into()),
    };
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Ok(secs * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, the inverse of [`Civil::from_unix_s`]).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-25T10:00:00.123Z` for Unix milliseconds: what every audit output prints.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = Civil::from_unix_s(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        ms.rem_euclid(1000)
    )
}

/// Serializes a millisecond field as RFC 3339 (serde `serialize_with`).
pub(crate) fn serialize_ms<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_ms(*ms))
}

/// [`serialize_ms`] for optional fields.
pub(crate) fn serialize_opt_ms<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339_ms(*ms)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_forms() {
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_instant("2026-11-25T10:00:00Z"), Ok(1_795_600_800_000));
        assert_eq!(parse_instant("2026-11-25t10:00:00.5z"), Ok(1_795_600_800_500));
        assert_eq!(parse_instant("2026-11-25T11:00:00.1239+01:00"), Ok(1_795_600_800_123));
        assert_eq!(parse_instant("2026-11-25T05:30:00-04:30"), Ok(1_795_600_800_000));
        assert_eq!(parse_instant("2026-11-25"), Ok(1_795_564_800_000));
        assert_eq!(parse_instant("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
        assert_eq!(parse_instant("1969-12-31T23:59:59Z"), Ok(-1000));
    }

    #[test]
    fn unix_seconds() {
        assert_eq!(parse_instant("1795600800"), Ok(1_795_600_800_000));
        assert_eq!(parse_instant("1795600800.25"), Ok(1_795_600_800_250));
        assert_eq!(parse_instant(" 0 "), Ok(0));
    }

    #[test]
    fn bad_times_say_what_is_wrong() {
        for (input, want) in [
            ("2026-13-01T00:00:00Z", "month 13"),
            ("2023-02-29T00:00:00Z", "day 29"),
            ("2026-11-25T10:00:00", "time zone is missing"),
            ("2026-11-25T24:00:00Z", "out of range"),
            ("2026-11-25T10:00:60Z", "leap seconds"),
            ("yesterday", "year"),
            ("", "empty"),
            ("12.3.4", "seconds"),
        ] {
            let err = parse_instant(input).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("RFC 3339"), "{input}: {err}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for ms in [0, 1_795_600_800_123, -1, 951_782_400_999, 4_102_444_800_000] {
            assert_eq!(parse_instant(&rfc3339_ms(ms)), Ok(ms), "{}", rfc3339_ms(ms));
        }
        assert_eq!(rfc3339_ms(1_795_600_800_123), "2026-11-25T10:00:00.123Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
