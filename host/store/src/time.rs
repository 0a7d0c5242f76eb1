//! Milliseconds since the Unix epoch (UTC), the store's one time unit, and the two
//! conversions the store needs: RFC 3339 for event bodies, `YYYY-MM-DD` from reports
//! (calendar arithmetic by jiff, as in the rest of the workspace).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYY-MM-DD` → midnight UTC in ms; `None` when it is not such a date.
pub(crate) fn date_ms(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    // Only the extended form: jiff would also take `20320531`.
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let day: jiff::civil::Date = date.parse().ok()?;
    let ts = jiff::tz::TimeZone::UTC
        .to_timestamp(day.to_datetime(jiff::civil::Time::midnight()))
        .ok()?;
    Some(ts.as_millisecond())
}

/// RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        // Outside jiff's range (±9999 years): no real timestamp of ours is.
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        // `date -u -d @1700000000` prints Tue Nov 14 22:13:20 UTC 2023.
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d 2032-05-31 +%s` prints 1969574400.
        assert_eq!(date_ms("2032-05-31"), Some(1_969_574_400_000));
        assert_eq!(date_ms("2000-02-29"), Some(951_782_400_000));
        assert_eq!(date_ms("2032-13-01"), None);
        assert_eq!(date_ms("20320531"), None);
    }
}
