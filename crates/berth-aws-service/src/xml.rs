//! Writing the Query protocol's XML answers: a tiny append-only writer whose only way to
//! put text in an element or attribute escapes it, plus the encodings values need
//! (timestamps as AWS writes them, policy documents percent-encoded).
//!
//! The documents are small and flat (at most a page of users), so a writer that appends to
//! one `String` is all that is needed; element names always come from this crate's code,
//! never from input, so only text is escaped.

use time::OffsetDateTime;

/// An XML document being written.
#[derive(Debug, Default)]
pub struct Xml {
    out: String,
}

/// Appends `s` with the five XML special characters escaped. Characters XML 1.0 cannot
/// carry at all (control characters other than tab, newline and carriage return) become
/// U+FFFD: they cannot come from validated input, and must not make the document invalid.
pub fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            // A literal CR would be normalized to LF by the parser.
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

impl Xml {
    pub fn new() -> Self {
        Xml::default()
    }

    /// `<tag>`.
    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `<tag xmlns="namespace">`.
    pub fn open_ns(&mut self, tag: &str, namespace: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str(" xmlns=\"");
        escape_into(namespace, &mut self.out);
        self.out.push_str("\">");
        self
    }

    /// `</tag>`.
    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// Escaped text inside the element being written.
    pub fn escaped(&mut self, value: &str) -> &mut Self {
        escape_into(value, &mut self.out);
        self
    }

    /// `<tag>escaped value</tag>`.
    pub fn text(&mut self, tag: &'static str, value: &str) -> &mut Self {
        self.open(tag);
        escape_into(value, &mut self.out);
        self.close(tag)
    }

    /// `<tag>value</tag>` when there is a value.
    pub fn text_opt(&mut self, tag: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.text(tag, v);
        }
        self
    }

    /// `<tag>true</tag>` or `<tag>false</tag>`.
    pub fn boolean(&mut self, tag: &'static str, value: bool) -> &mut Self {
        self.text(tag, if value { "true" } else { "false" })
    }

    /// `<tag>2024-01-02T03:04:05Z</tag>`.
    pub fn date_ms(&mut self, tag: &'static str, ms: i64) -> &mut Self {
        self.text(tag, &iso8601(ms))
    }

    /// `<tag><member>..</member>...</tag>`, one member per item written by `f`.
    pub fn list<T>(
        &mut self,
        tag: &'static str,
        items: &[T],
        mut f: impl FnMut(&mut Self, &T),
    ) -> &mut Self {
        self.open(tag);
        for item in items {
            self.open("member");
            f(self, item);
            self.close("member");
        }
        self.close(tag)
    }

    /// Appends a fragment written by another `Xml`.
    pub fn raw_fragment(&mut self, fragment: &Xml) -> &mut Self {
        self.out.push_str(&fragment.out);
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Milliseconds since the epoch as AWS writes timestamps in Query answers
/// (`2013-04-10T20:47:26Z`, UTC, whole seconds).
pub fn iso8601(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A policy document as IAM returns it: percent-encoded (RFC 3986, everything but the
/// unreserved characters). botocore URL-decodes every `policyDocumentType` member and parses
/// the JSON; `%20` rather than `+` for spaces, since it decodes with `unquote`.
pub fn encode_policy_document(doc: &str) -> String {
    berth_sigv4::uri_encode(doc.as_bytes(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        let mut x = Xml::new();
        x.open_ns("R", "urn:a&b")
            .text("Name", "<script>&\"'")
            .text_opt("Absent", None)
            .text_opt("Present", Some("p"))
            .boolean("IsTruncated", false)
            .close("R");
        assert_eq!(
            x.finish(),
            "<R xmlns=\"urn:a&amp;b\"><Name>&lt;script&gt;&amp;&quot;&apos;</Name>\
             <Present>p</Present><IsTruncated>false</IsTruncated></R>"
        );
    }

    #[test]
    fn control_characters_never_break_the_document() {
        let mut out = String::new();
        escape_into("a\u{1}b\tc\nd\re", &mut out);
        assert_eq!(out, "a\u{fffd}b\tc\nd&#13;e");
    }

    #[test]
    fn lists_have_member_elements() {
        let mut x = Xml::new();
        x.list("PolicyNames", &["a", "b&c"], |x, n| {
            x.escaped(n);
        });
        assert_eq!(
            x.finish(),
            "<PolicyNames><member>a</member><member>b&amp;c</member></PolicyNames>"
        );
        let mut x = Xml::new();
        x.list::<&str>("Users", &[], |_, _| {});
        assert_eq!(x.finish(), "<Users></Users>");
    }

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_365_626_846_789), "2013-04-10T20:47:26Z");
    }

    #[test]
    fn policy_documents_are_percent_encoded_as_iam_does() {
        let doc = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}"#;
        let enc = encode_policy_document(doc);
        assert!(enc.starts_with("%7B%22Version%22%3A%20%222012-10-17%22"));
        assert!(!enc.contains('+') && !enc.contains(' '));
        assert_eq!(berth_sigv4::percent_decode(&enc), doc.as_bytes());
        assert_eq!(encode_policy_document("a-b_c.d~é"), "a-b_c.d~%C3%A9");
    }
}
