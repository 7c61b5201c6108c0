//! Decisions every metadata backend shares. A backend's transaction reads the facts with
//! its own SQL, under its own serialization, and calls these to decide before it writes:
//! the rule lives once, here, not in each dialect's SQL, and each write stays one
//! transaction.

use crate::lifecycle::{ExpireOutcome, Expiry};

/// ECR's `imageSizeInBytes`, computed once at push: the sum of the image's layer sizes
/// (the config excluded; layers absent from the store, such as non-distributable ones,
/// count nothing), or for an index the largest of its children's sizes (and of its own
/// layers, which an index does not normally have).
pub fn image_size(
    layer_sizes: impl IntoIterator<Item = u64>,
    child_sizes: impl IntoIterator<Item = u64>,
) -> u64 {
    let own: u64 = layer_sizes.into_iter().sum();
    child_sizes.into_iter().fold(own, u64::max)
}

/// What holds a blob row, as garbage collection's deleting transaction reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHolds {
    /// When a pass found it unreferenced (`None`: not marked).
    pub orphaned_ms: Option<i64>,
    /// Some repository links it.
    pub linked: bool,
    /// Some manifest of any repository references it (config or layer).
    pub referenced: bool,
    /// A commit has pinned it.
    pub pinned: bool,
}

/// Garbage collection's re-check: a blob is deleted only when nothing holds it and it was
/// marked unreferenced at or before `cutoff_ms`.
pub fn blob_deletable(h: &BlobHolds, cutoff_ms: i64) -> bool {
    h.orphaned_ms.is_some_and(|m| m <= cutoff_ms) && !h.linked && !h.referenced && !h.pinned
}

/// What may still need an archived blob's standard copy (in the blob store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardCopyHolds {
    /// A manifest that is not `ARCHIVED` (in any repository) references it.
    pub unarchived_reference: bool,
    /// A commit has pinned it.
    pub pinned: bool,
    /// A repository links it without a manifest of its own referencing it (a push in
    /// progress: its manifest comes next).
    pub bare_link: bool,
}

/// The archive storage class's re-check: the standard copy is dropped only when nothing
/// but archived images needs it.
pub fn standard_copy_unneeded(h: &StandardCopyHolds) -> bool {
    !h.unarchived_reference && !h.pinned && !h.bare_link
}

/// An image as lifecycle execution's conditional delete reads it, in its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageNow {
    /// Its tags now, in any order.
    pub tags: Vec<String>,
    /// Its storage status now (`ACTIVE`, `ARCHIVED`, `ACTIVATING`).
    pub status: String,
    /// An index of the repository that references it now, if any.
    pub referencing_index: Option<String>,
}

/// Whether lifecycle execution may expire an image evaluated as `expiry`, given what it
/// is now (`None`: gone). `None` means "delete it"; otherwise the outcome to report, with
/// nothing changed: an image whose tags or storage status moved since evaluation (a
/// concurrent push, an archive or restore) or that an index references is left alone.
pub fn expiry_refusal(now: Option<&ImageNow>, expiry: &Expiry) -> Option<ExpireOutcome> {
    let Some(now) = now else {
        return Some(ExpireOutcome::Gone);
    };
    let sorted = |tags: &[String]| {
        let mut t = tags.to_vec();
        t.sort();
        t.dedup();
        t
    };
    if sorted(&now.tags) != sorted(&expiry.expected_tags) || now.status != expiry.expected_status {
        return Some(ExpireOutcome::Changed);
    }
    now.referencing_index
        .clone()
        .map(ExpireOutcome::ReferencedByIndex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_size_sums_layers_and_takes_the_largest_child() {
        assert_eq!(image_size([3, 4], []), 7);
        assert_eq!(image_size([], [5, 9, 2]), 9);
        assert_eq!(image_size([10], [5]), 10);
        assert_eq!(image_size([], []), 0);
    }

    #[test]
    fn a_blob_goes_only_when_nothing_holds_it_and_its_mark_is_old() {
        let free = BlobHolds {
            orphaned_ms: Some(100),
            linked: false,
            referenced: false,
            pinned: false,
        };
        assert!(blob_deletable(&free, 100));
        assert!(!blob_deletable(&free, 99));
        assert!(!blob_deletable(
            &BlobHolds {
                orphaned_ms: None,
                ..free
            },
            i64::MAX
        ));
        assert!(!blob_deletable(
            &BlobHolds {
                linked: true,
                ..free
            },
            100
        ));
        assert!(!blob_deletable(
            &BlobHolds {
                referenced: true,
                ..free
            },
            100
        ));
        assert!(!blob_deletable(
            &BlobHolds {
                pinned: true,
                ..free
            },
            100
        ));
    }

    #[test]
    fn a_standard_copy_goes_only_when_archived_images_alone_need_it() {
        let none = StandardCopyHolds {
            unarchived_reference: false,
            pinned: false,
            bare_link: false,
        };
        assert!(standard_copy_unneeded(&none));
        for held in [
            StandardCopyHolds {
                unarchived_reference: true,
                ..none
            },
            StandardCopyHolds {
                pinned: true,
                ..none
            },
            StandardCopyHolds {
                bare_link: true,
                ..none
            },
        ] {
            assert!(!standard_copy_unneeded(&held));
        }
    }

    #[test]
    fn expiry_leaves_changed_gone_and_index_held_images_alone() {
        let expiry = Expiry {
            digest: berth_types::Digest::sha256_of(b"x"),
            expected_tags: vec!["b".into(), "a".into()],
            rule_priority: 1,
            expected_status: "ACTIVE".into(),
            size: 1,
            pushed_ms: 0,
            at_ms: 0,
        };
        let now = ImageNow {
            tags: vec!["a".into(), "b".into()],
            status: "ACTIVE".into(),
            referencing_index: None,
        };
        assert_eq!(expiry_refusal(Some(&now), &expiry), None);
        assert_eq!(expiry_refusal(None, &expiry), Some(ExpireOutcome::Gone));
        let retagged = ImageNow {
            tags: vec!["a".into()],
            ..now.clone()
        };
        assert_eq!(
            expiry_refusal(Some(&retagged), &expiry),
            Some(ExpireOutcome::Changed)
        );
        let archived = ImageNow {
            status: "ARCHIVED".into(),
            ..now.clone()
        };
        assert_eq!(
            expiry_refusal(Some(&archived), &expiry),
            Some(ExpireOutcome::Changed)
        );
        let held = ImageNow {
            referencing_index: Some("sha256:i".into()),
            ..now
        };
        assert_eq!(
            expiry_refusal(Some(&held), &expiry),
            Some(ExpireOutcome::ReferencedByIndex("sha256:i".into()))
        );
    }
}
