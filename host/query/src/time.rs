//! Datetimes are milliseconds since the Unix epoch, UTC (the store's BIGINT columns);
//! timespans are milliseconds. Parsing and printing are done here, without a calendar
//! library, so the fuzzer exercises every line of it.

pub(crate) const MS_PER_SECOND: i64 = 1_000;
pub(crate) const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
pub(crate) const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
pub(crate) const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses the text inside `datetime(...)`: `2026-11-01`, `2026-11-01T10:00`,
/// `2026-11-01 10:00:30.250`, with an optional `Z` or `±hh:mm` offset (UTC when absent).
pub(crate) fn parse_datetime(text: &str) -> Result<i64, String> {
    const FORMS: &str = "use datetime(2026-11-01) or datetime(2026-11-01T10:30:00Z)";
    let b = text.as_bytes();
    let mut p = 0usize;
    let num = |p: &mut usize, n: usize| -> Result<i64, String> {
        let digits = b
            .get(*p..*p + n)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| format!("malformed datetime '{text}': {FORMS}"))?;
        *p += n;
        Ok(digits
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let expect = |p: &mut usize, c: u8| -> Result<(), String> {
        if b.get(*p) == Some(&c) {
            *p += 1;
            Ok(())
        } else {
            Err(format!("malformed datetime '{text}': {FORMS}"))
        }
    };
    let year = num(&mut p, 4)?;
    expect(&mut p, b'-')?;
    let month = num(&mut p, 2)?;
    expect(&mut p, b'-')?;
    let day = num(&mut p, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || year < 1 {
        return Err(format!("'{text}' is not a valid date"));
    }
    let (mut hour, mut minute, mut second, mut milli) = (0, 0, 0, 0);
    if matches!(b.get(p), Some(b'T' | b't' | b' ')) {
        p += 1;
        hour = num(&mut p, 2)?;
        expect(&mut p, b':')?;
        minute = num(&mut p, 2)?;
        if b.get(p) == Some(&b':') {
            p += 1;
            second = num(&mut p, 2)?;
            if b.get(p) == Some(&b'.') {
                p += 1;
                // Up to 9 fractional digits (nanoseconds) are accepted; milliseconds kept.
                let start = p;
                while p < b.len() && b[p].is_ascii_digit() && p - start < 9 {
                    p += 1;
                }
                if p == start {
                    return Err(format!("malformed datetime '{text}': {FORMS}"));
                }
                let frac = &text[start..p];
                let padded = format!("{frac:0<3}");
                milli = padded[..3]
                    .parse::<i64>()
                    .map_err(|_| format!("malformed datetime '{text}'"))?;
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(format!("'{text}' is not a valid time of day"));
        }
    }
    let mut offset_ms = 0;
    match b.get(p) {
        None => {}
        Some(b'Z' | b'z') => p += 1,
        Some(&sign @ (b'+' | b'-')) => {
            p += 1;
            let oh = num(&mut p, 2)?;
            expect(&mut p, b':')?;
            let om = num(&mut p, 2)?;
            if oh > 23 || om > 59 {
                return Err(format!("'{text}' has an invalid UTC offset"));
            }
            offset_ms = (oh * MS_PER_HOUR + om * MS_PER_MINUTE) * if sign == b'+' { 1 } else { -1 };
        }
        Some(_) => return Err(format!("malformed datetime '{text}': {FORMS}")),
    }
    if p != b.len() {
        return Err(format!("malformed datetime '{text}': {FORMS}"));
    }
    let days = days_from_civil(year, month, day);
    Ok(days * MS_PER_DAY
        + hour * MS_PER_HOUR
        + minute * MS_PER_MINUTE
        + second * MS_PER_SECOND
        + milli
        - offset_ms)
}

/// RFC 3339 in UTC: `2026-11-01T10:30:00Z`, with `.mmm` only when there are milliseconds.
pub fn format_datetime(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (h, rem) = (rem / MS_PER_HOUR, rem % MS_PER_HOUR);
    let (mi, rem) = (rem / MS_PER_MINUTE, rem % MS_PER_MINUTE);
    let (s, milli) = (rem / MS_PER_SECOND, rem % MS_PER_SECOND);
    if milli == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
    }
}

/// Kusto's timespan form: `[-][d.]hh:mm:ss[.mmm]`.
pub fn format_timespan(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let a = ms.unsigned_abs();
    let day = MS_PER_DAY.unsigned_abs();
    let (d, rem) = (a / day, a % day);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, milli) = (rem / 1000, rem % 1000);
    let mut out = String::from(sign);
    if d > 0 {
        out.push_str(&format!("{d}."));
    }
    out.push_str(&format!("{h:02}:{m:02}:{s:02}"));
    if milli > 0 {
        out.push_str(&format!(".{milli:03}"));
    }
    out
}

/// Milliseconds per timespan unit, for the lexer (`7d`, `3h`, `15m`, `30s`, `100ms`).
pub(crate) fn timespan_unit(unit: &str) -> Option<i64> {
    Some(match unit {
        "d" | "day" | "days" => MS_PER_DAY,
        "h" | "hr" | "hrs" | "hour" | "hours" => MS_PER_HOUR,
        "m" | "min" | "minute" | "minutes" => MS_PER_MINUTE,
        "s" | "sec" | "second" | "seconds" => MS_PER_SECOND,
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from `date -u -d ... +%s` (GNU coreutils), times 1000.
    #[test]
    fn parses_against_date() {
        assert_eq!(parse_datetime("1970-01-01"), Ok(0));
        assert_eq!(parse_datetime("2026-11-01"), Ok(1_793_491_200_000));
        assert_eq!(
            parse_datetime("2026-11-01T10:30:00Z"),
            Ok(1_793_529_000_000)
        );
        assert_eq!(parse_datetime("2026-11-01 10:30"), Ok(1_793_529_000_000));
        assert_eq!(
            parse_datetime("2026-11-01T12:30:00+02:00"),
            Ok(1_793_529_000_000)
        );
        assert_eq!(
            parse_datetime("2024-02-29T00:00:00.5"),
            Ok(1_709_164_800_500)
        );
        assert_eq!(parse_datetime("1969-12-31T23:59:59Z"), Ok(-1000));
        assert!(parse_datetime("2023-02-29").is_err());
        assert!(parse_datetime("2026-13-01").is_err());
        assert!(parse_datetime("2026-11-01T24:00").is_err());
        assert!(parse_datetime("2026-11-01x").is_err());
        assert!(parse_datetime("26-11-01").is_err());
        assert!(parse_datetime("").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_datetime(1_793_529_000_000), "2026-11-01T10:30:00Z");
        assert_eq!(
            format_datetime(1_709_164_800_500),
            "2024-02-29T00:00:00.500Z"
        );
        assert_eq!(format_datetime(-1000), "1969-12-31T23:59:59Z");
        assert_eq!(format_timespan(7 * MS_PER_DAY), "7.00:00:00");
        assert_eq!(format_timespan(90 * MS_PER_MINUTE + 5), "01:30:00.005");
        assert_eq!(format_timespan(-MS_PER_HOUR), "-01:00:00");
    }

    #[test]
    fn round_trips_across_centuries() {
        for days in (-719_162i64..2_932_896).step_by(997) {
            let ms = days * MS_PER_DAY + 12_345;
            let text = format_datetime(ms);
            assert_eq!(parse_datetime(&text), Ok(ms), "{text}");
        }
    }
}
