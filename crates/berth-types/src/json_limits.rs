//! Depth and element-count limits for JSON read from the network, checked before serde.
//!
//! serde_json stops typed and `Value` parsing at 128 levels, but it skips unknown
//! members without any limit, so a manifest with 100,000 levels of nesting in an
//! unknown field parses, is stored, and then breaks clients whose parsers stop earlier
//! (Go's `encoding/json` at 10,000). And a body of tiny elements (`[0,0,0,...]`) costs
//! dozens of bytes of memory per input byte once parsed into a `Value`. This one pass
//! over the bytes, without allocation, refuses both before any parser runs. It does not
//! validate the JSON: whatever it lets through, the real parser still judges.

/// How deep and how large a JSON document may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Most levels of nested arrays and objects (the top-level value's container is level 1).
    pub max_depth: usize,
    /// Most array elements plus object members, counted over the whole document.
    pub max_elements: usize,
}

impl JsonLimits {
    /// For manifests, indexes and API request bodies: far above any real document (a
    /// large index has a few hundred entries; an image a few hundred layers, each with
    /// a handful of annotations), far below what would hurt. 64 levels stays under
    /// serde_json's own limit of 128, so our error is the one users see.
    pub const DOCUMENT: JsonLimits = JsonLimits {
        max_depth: 64,
        max_elements: 10_000,
    };
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonLimitError {
    #[error("JSON is nested more than {max} levels deep")]
    TooDeep { max: usize },
    #[error("JSON has more than {max} array elements and object members")]
    TooManyElements { max: usize },
}

/// Refuses `bytes` when its arrays and objects nest deeper than `limits.max_depth` or
/// hold more than `limits.max_elements` elements and members in all. Bytes inside
/// strings (including escaped quotes) are not structure.
///
/// ```
/// use berth_types::json_limits::{check, JsonLimits, JsonLimitError};
/// let limits = JsonLimits { max_depth: 2, max_elements: 3 };
/// assert!(check(br#"{"a":[1,"]]]"]}"#, limits).is_ok());
/// assert_eq!(check(b"[[[1]]]", limits), Err(JsonLimitError::TooDeep { max: 2 }));
/// assert_eq!(check(b"[1,2,3,4]", limits), Err(JsonLimitError::TooManyElements { max: 3 }));
/// ```
pub fn check(bytes: &[u8], limits: JsonLimits) -> Result<(), JsonLimitError> {
    let mut depth = 0usize;
    let mut elements = 0usize;
    // Whether the innermost open container has had a value yet (its first element
    // is counted when it starts; later ones at each comma).
    let mut awaiting_first = false;
    let mut in_string = false;
    let mut escaped = false;
    let count = |elements: &mut usize| {
        *elements += 1;
        if *elements > limits.max_elements {
            Err(JsonLimitError::TooManyElements {
                max: limits.max_elements,
            })
        } else {
            Ok(())
        }
    };
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        if awaiting_first && !matches!(b, b']' | b'}') {
            awaiting_first = false;
            count(&mut elements)?;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limits.max_depth {
                    return Err(JsonLimitError::TooDeep {
                        max: limits.max_depth,
                    });
                }
                awaiting_first = true;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                awaiting_first = false;
            }
            b',' if depth > 0 => count(&mut elements)?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: JsonLimits = JsonLimits {
        max_depth: 3,
        max_elements: 5,
    };

    fn nested(levels: usize) -> Vec<u8> {
        let mut v = vec![b'['; levels];
        v.extend(std::iter::repeat_n(b']', levels));
        v
    }

    #[test]
    fn depth_counts_arrays_and_objects_but_not_strings() {
        assert!(check(&nested(3), SMALL).is_ok());
        assert_eq!(
            check(&nested(4), SMALL),
            Err(JsonLimitError::TooDeep { max: 3 })
        );
        assert!(check(br#"{"a":{"b":"[[[[{{{{"}}"#, SMALL).is_ok());
        assert!(check(br#"{"a":"\"[[[[","b":1}"#, SMALL).is_ok());
        assert!(check(br#"["\\",[[1]]]"#, SMALL).is_ok());
        assert_eq!(
            check(br#"["\\",[[[1]]]]"#, SMALL),
            Err(JsonLimitError::TooDeep { max: 3 })
        );
        assert_eq!(
            check(&nested(100_000), JsonLimits::DOCUMENT),
            Err(JsonLimitError::TooDeep { max: 64 })
        );
    }

    #[test]
    fn elements_are_counted_over_the_whole_document() {
        assert!(check(b"[1,2,3,4,5]", SMALL).is_ok());
        assert!(check(b"[[],{},[ ],{ }]", SMALL).is_ok());
        assert_eq!(
            check(b"[1,2,3,4,5,6]", SMALL),
            Err(JsonLimitError::TooManyElements { max: 5 })
        );
        assert_eq!(
            check(br#"{"a":[1,2],"b":{"c":1,"d":2}}"#, SMALL),
            Err(JsonLimitError::TooManyElements { max: 5 })
        );
        assert!(check(br#"{"a":"x,y,z,1,2,3,4,5"}"#, SMALL).is_ok());
        assert!(check(b"", SMALL).is_ok());
        assert!(check(b"  42 ", SMALL).is_ok());
    }

    #[test]
    fn a_large_real_index_fits_the_document_limits() {
        let entry = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1,"platform":{"os":"linux","architecture":"amd64"},"annotations":{"a":"b","c":"d"}}"#;
        let entries = vec![entry; 500].join(",");
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{entries}]}}"#);
        assert!(check(index.as_bytes(), JsonLimits::DOCUMENT).is_ok());
    }
}
