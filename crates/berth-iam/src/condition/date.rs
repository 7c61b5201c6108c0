//! Dates as the Date operators accept them: ISO 8601 (`2024-05-01T12:00:00Z`, with fractions or an offset,
//! `2024-05-01T12:00:00` taken as UTC, `2024-05-01` as midnight UTC) or epoch seconds (`1714564800`, `1714564800.5`).
//! Compared as nanoseconds since the epoch.

use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// Nanoseconds since the Unix epoch, or `None` when `s` is not a date.
pub(crate) fn parse_date(s: &str) -> Option<i128> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && s.bytes().any(|b| b.is_ascii_digit())
    {
        if let Some(n) = parse_epoch(s) {
            return Some(n);
        }
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Iso8601::PARSING) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = PrimitiveDateTime::parse(s, &Iso8601::PARSING) {
        return Some(t.assume_utc().unix_timestamp_nanos());
    }
    if let Ok(d) = Date::parse(s, &Iso8601::PARSING) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    None
}

/// Epoch seconds, integral or fractional.
fn parse_epoch(s: &str) -> Option<i128> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(i128::from(secs) * 1_000_000_000);
    }
    let f = s.parse::<f64>().ok().filter(|f| f.is_finite())?;
    Some((f * 1e9) as i128)
}

/// Epoch seconds as nanoseconds, for numbers compared with Date operators.
pub(crate) fn epoch_f64_to_nanos(f: f64) -> Option<i128> {
    f.is_finite().then_some((f * 1e9) as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: i128 = 1_714_564_800 * 1_000_000_000;

    #[test]
    fn iso_and_epoch_forms() {
        assert_eq!(parse_date("2024-05-01T12:00:00Z"), Some(NOON));
        assert_eq!(parse_date("2024-05-01T12:00:00.000Z"), Some(NOON));
        assert_eq!(parse_date("2024-05-01T14:00:00+02:00"), Some(NOON));
        assert_eq!(parse_date("2024-05-01T12:00:00"), Some(NOON));
        assert_eq!(
            parse_date("2024-05-01"),
            Some(NOON - 12 * 3600 * 1_000_000_000)
        );
        assert_eq!(parse_date("1714564800"), Some(NOON));
        assert_eq!(parse_date("1714564800.5"), Some(NOON + 500_000_000));
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date(""), None);
    }
}
