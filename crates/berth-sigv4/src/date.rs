//! The two timestamp formats a SigV4 request may carry: ISO 8601 basic (`20150830T123600Z`,
//! in `X-Amz-Date`) and the HTTP `Date` header (IMF-fixdate, `Sun, 30 Aug 2015 12:36:00 GMT`).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn build(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<OffsetDateTime> {
    let month = Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()?;
    let time = Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(s).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Parses `YYYYMMDDTHHMMSSZ` exactly (16 ASCII characters, UTC). Works on bytes: the
/// header is untrusted, and a string slice at a fixed offset could split a multi-byte
/// character (`202é123T000000Z` is 16 bytes long).
pub fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let field = |from: usize, to: usize| b.get(from..to).and_then(ascii_digits);
    build(
        field(0, 4)?,
        field(4, 6)?,
        field(6, 8)?,
        field(9, 11)?,
        field(11, 13)?,
        field(13, 15)?,
    )
}

/// The value of a non-empty run of ASCII digits (at most 9, so it fits a `u32`).
fn ascii_digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Formats a time as `YYYYMMDDTHHMMSSZ` in UTC (sub-second part dropped).
pub fn format_amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an HTTP date in IMF-fixdate form, `Sun, 06 Nov 1994 08:49:37 GMT`. The zone may
/// also be `UTC`, `+0000` or `-0000` (Python's `email.utils.formatdate`, which botocore uses
/// when it signs with a `Date` header, writes `-0000`). The weekday is not checked.
pub fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let (_weekday, rest) = s.split_once(", ")?;
    let mut parts = rest.split_ascii_whitespace();
    let day = digits(parts.next()?)?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = digits(parts.next()?)?;
    let mut hms = parts.next()?.split(':');
    let (h, mi, sec) = (
        digits(hms.next()?)?,
        digits(hms.next()?)?,
        digits(hms.next()?)?,
    );
    if hms.next().is_some() {
        return None;
    }
    if !matches!(parts.next()?, "GMT" | "UTC" | "+0000" | "-0000") || parts.next().is_some() {
        return None;
    }
    build(year, month, day, h, mi, sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn amz_date_round_trip() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(t, datetime!(2015-08-30 12:36:00 UTC));
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        for bad in [
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "2015083XT123600Z",
            "",
            // 16 bytes, but a two-byte character straddles the year/month boundary.
            "202\u{e9}123T000000Z",
            "2015083\u{e9}T12360Z",
            "20150830T1236\u{e9}Z",
            "+201508T123600Z0",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn http_date_forms() {
        let want = datetime!(2015-08-30 12:36:00 UTC);
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"), Some(want));
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 -0000"),
            Some(want)
        );
        assert!(parse_http_date("Sunday, 30-Aug-15 12:36:00 GMT").is_none());
        assert!(parse_http_date("Sun, 30 Aug 2015 12:36:00 +0200").is_none());
    }
}
