//! Percent-encoding exactly as SigV4 wants it (RFC 3986 unreserved characters kept, every
//! other byte as `%XX` with upper-case hex), and a lenient percent-decoder.

/// `A-Z a-z 0-9 - _ . ~`: the only bytes SigV4 never encodes.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `input` to `out`, encoding every byte that is not unreserved (and not `/` when
/// `keep_slash`). A `%` already in `input` is encoded too (`%25`): this is what makes the
/// non-S3 canonical URI "encoded twice".
pub fn uri_encode_into(input: &[u8], keep_slash: bool, out: &mut String) {
    for &b in input {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX_UPPER[(b >> 4) as usize] as char);
            out.push(HEX_UPPER[(b & 0x0f) as usize] as char);
        }
    }
}

/// [`uri_encode_into`] into a new string.
pub fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 2);
    uri_encode_into(input, keep_slash, &mut out);
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes. A `%` not followed by two hex digits is kept literally; `+` is
/// kept as `+` (SigV4 query strings are not `application/x-www-form-urlencoded`).
pub fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Decodes `%XX` escapes into a string (invalid UTF-8 replaced), for parameter values such
/// as `X-Amz-Credential` that are ASCII in practice.
pub fn percent_decode_str(input: &str) -> String {
    match String::from_utf8(percent_decode(input)) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(uri_encode(b"-._~azAZ09", false), "-._~azAZ09");
        assert_eq!(uri_encode(b"a b/c+d%2F", false), "a%20b%2Fc%2Bd%252F");
        assert_eq!(uri_encode(b"a b/c", true), "a%20b/c");
        assert_eq!(uri_encode("\u{1234}".as_bytes(), true), "%E1%88%B4");
    }

    #[test]
    fn decodes_leniently() {
        assert_eq!(percent_decode("a%20b%2fc"), b"a b/c");
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%4"), b"%4");
        assert_eq!(percent_decode("%zz%41"), b"%zzA");
        assert_eq!(percent_decode("a+b"), b"a+b");
    }
}
