//! Parsing and formatting of the headers the distribution API uses: `Range`,
//! `Content-Range` on uploads, upload `Range` reports, merged `Accept` lines.

use http::HeaderMap;

/// The upload progress header value: `0-<last byte>`, or `0-0` when empty (as the
/// reference registry reports it).
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// A header that is present but cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedHeader;

/// A requested blob range: `(start, end)`, with `(None, Some(n))` for the last `n` bytes.
pub type RangeSpec = (Option<u64>, Option<u64>);

/// A `Range: bytes=...` request header for a blob GET: `(start, end)` where a suffix
/// range is `(None, Some(n))`. Multiple ranges or other units are ignored (served whole),
/// as RFC 9110 allows.
pub fn blob_range(headers: &HeaderMap) -> Result<Option<RangeSpec>, MalformedHeader> {
    let Some(v) = headers.get(http::header::RANGE) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| MalformedHeader)?.trim();
    let Some(spec) = v.strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(MalformedHeader)?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().map_err(|_| MalformedHeader);
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Err(MalformedHeader),
        (true, false) => Ok(Some((None, Some(num(b)?)))),
        (false, true) => Ok(Some((Some(num(a)?), None))),
        (false, false) => Ok(Some((Some(num(a)?), Some(num(b)?)))),
    }
}

/// The `Content-Range` of an upload chunk: `<start>-<end>` (also accepting a `bytes `
/// or `bytes=` prefix and a `/total` suffix). Returns `(start, end)` inclusive.
pub fn upload_content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, MalformedHeader> {
    let Some(v) = headers.get(http::header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| MalformedHeader)?.trim();
    let v = v
        .strip_prefix("bytes=")
        .or_else(|| v.strip_prefix("bytes "))
        .unwrap_or(v);
    let v = v.split('/').next().unwrap_or(v);
    let (a, b) = v.split_once('-').ok_or(MalformedHeader)?;
    let start = a.trim().parse::<u64>().map_err(|_| MalformedHeader)?;
    let end = b.trim().parse::<u64>().map_err(|_| MalformedHeader)?;
    if end < start {
        return Err(MalformedHeader);
    }
    Ok(Some((start, end)))
}

/// The number of bytes in the inclusive range `start..=end`; `None` when that is more
/// than a u64 holds (`0-18446744073709551615`) or `end < start`.
pub fn range_length(start: u64, end: u64) -> Option<u64> {
    end.checked_sub(start)?.checked_add(1)
}

/// `Content-Length`, if present and valid.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: http::HeaderName, v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, v.parse().unwrap());
        m
    }

    #[test]
    fn blob_ranges() {
        let r = |v| blob_range(&h(http::header::RANGE, v));
        assert_eq!(r("bytes=0-9"), Ok(Some((Some(0), Some(9)))));
        assert_eq!(r("bytes=5-"), Ok(Some((Some(5), None))));
        assert_eq!(r("bytes=-5"), Ok(Some((None, Some(5)))));
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        assert_eq!(r("items=0-1"), Ok(None));
        assert_eq!(r("bytes=x-1"), Err(MalformedHeader));
        assert_eq!(r("bytes=-"), Err(MalformedHeader));
        assert_eq!(blob_range(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn upload_ranges() {
        let r = |v| upload_content_range(&h(http::header::CONTENT_RANGE, v));
        assert_eq!(r("0-99"), Ok(Some((0, 99))));
        assert_eq!(r("bytes 100-199/1000"), Ok(Some((100, 199))));
        assert_eq!(r("bytes=5-5"), Ok(Some((5, 5))));
        assert_eq!(r("9-1"), Err(MalformedHeader));
        assert_eq!(r("junk"), Err(MalformedHeader));
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(10), "0-9");
    }
}
