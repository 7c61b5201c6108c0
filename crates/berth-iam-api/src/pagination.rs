//! `Marker`/`MaxItems` pagination of IAM list operations.
//!
//! Lists are sorted by a unique key (user, group and policy names as the store orders them,
//! byte-wise; access key ids). The marker handed out is the key of the first item not yet
//! returned, and a page starts at the first item whose key is not below the marker, so an
//! item added or removed between two calls neither repeats nor hides the others.

use crate::xml::Xml;

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The `Marker` of the next page; `None` when this is the last page.
    pub next_marker: Option<String>,
}

impl<T> Page<T> {
    /// `<IsTruncated>` and, when truncated, `<Marker>` (AWS always sends the former).
    pub fn write_tail(&self, x: &mut Xml) {
        x.boolean("IsTruncated", self.next_marker.is_some());
        x.text_opt("Marker", self.next_marker.as_deref());
    }
}

/// The page of `items` (sorted by `key`) that starts at `marker`, at most `max` long.
pub fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    marker: Option<&str>,
    max: usize,
) -> Page<T> {
    let start = match marker {
        None => 0,
        Some(m) => items.partition_point(|i| key(i) < m),
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next_marker = if rest.len() > max {
        Some(key(&rest[max]).to_string())
    } else {
        None
    };
    rest.truncate(max);
    Page {
        items: rest,
        next_marker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user{i:02}")).collect()
    }

    #[test]
    fn walks_every_item_once() {
        let all = names(7);
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = paginate(all.clone(), |s| s.as_str(), marker.as_deref(), 3);
            seen.extend(page.items.clone());
            pages += 1;
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, all);
        assert_eq!(pages, 3);
    }

    #[test]
    fn exact_fit_is_not_truncated_and_changes_between_pages_are_tolerated() {
        let page = paginate(names(3), |s| s.as_str(), None, 3);
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.next_marker, None);
        let page = paginate(names(5), |s| s.as_str(), None, 2);
        assert_eq!(page.next_marker.as_deref(), Some("user02"));
        // user02 was deleted before the next call: the page starts at user03.
        let mut left = names(5);
        left.remove(2);
        let page = paginate(left, |s| s.as_str(), Some("user02"), 2);
        assert_eq!(page.items, vec!["user03", "user04"]);
        assert_eq!(page.next_marker, None);
        let mut x = Xml::new();
        paginate(names(2), |s| s.as_str(), None, 1).write_tail(&mut x);
        assert_eq!(
            x.finish(),
            "<IsTruncated>true</IsTruncated><Marker>user01</Marker>"
        );
    }
}
