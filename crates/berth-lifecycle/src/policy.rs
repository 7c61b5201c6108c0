//! The parsed, validated form of a lifecycle policy. Built only by [`LifecyclePolicy::parse`], so every value
//! of these types satisfies ECR's rules (and, where a Berth extension is present, Berth's).

use crate::matcher::{Exclusion, TagFilter};

/// The storage class of an image, or the one a rule selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageClass {
    /// Pullable images (ECR `STANDARD`).
    Standard,
    /// Archived images: listed but not pullable until restored (ECR `ARCHIVE`).
    Archive,
}

impl StorageClass {
    /// The API's spelling (`ImageStorageClass`, `LifecyclePolicyStorageClass`): `STANDARD` / `ARCHIVE`.
    pub fn as_api(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::Archive => "ARCHIVE",
        }
    }

    /// The policy language's spelling: `standard` / `archive`.
    pub fn as_policy(self) -> &'static str {
        match self {
            StorageClass::Standard => "standard",
            StorageClass::Archive => "archive",
        }
    }
}

/// Which images a rule looks at by their tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagStatus {
    /// Images with at least one tag matching the rule's filter.
    Tagged,
    /// Images without tags.
    Untagged,
    /// Every image.
    Any,
}

/// When a selected image is acted on. Ages are whole days (`countUnit` `days`); "older than N days" is strict:
/// an image pushed exactly N days ago is not older than N days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountType {
    /// Keep the newest N selected images (by push time); act on the rest.
    ImageCountMoreThan(u32),
    /// Act on selected images pushed (or restored from archive) more than N days ago.
    SinceImagePushed(u32),
    /// Act on selected images whose last pull (else restore, else push) is more than N days ago.
    SinceImagePulled(u32),
    /// Act on selected archived images archived more than N days ago.
    SinceImageTransitioned(u32),
}

impl CountType {
    /// The policy language's name of the count type.
    pub fn name(self) -> &'static str {
        match self {
            CountType::ImageCountMoreThan(_) => "imageCountMoreThan",
            CountType::SinceImagePushed(_) => "sinceImagePushed",
            CountType::SinceImagePulled(_) => "sinceImagePulled",
            CountType::SinceImageTransitioned(_) => "sinceImageTransitioned",
        }
    }

    /// `countNumber`.
    pub fn number(self) -> u32 {
        match self {
            CountType::ImageCountMoreThan(n)
            | CountType::SinceImagePushed(n)
            | CountType::SinceImagePulled(n)
            | CountType::SinceImageTransitioned(n) => n,
        }
    }
}

/// What a rule does to the images it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Delete the image (ECR `EXPIRE`).
    Expire,
    /// Move the image to another storage class; only `Archive` exists (ECR `TRANSITION`).
    Transition(StorageClass),
}

impl Action {
    /// The API's `ImageActionType`: `EXPIRE` / `TRANSITION`.
    pub fn api_type(self) -> &'static str {
        match self {
            Action::Expire => "EXPIRE",
            Action::Transition(_) => "TRANSITION",
        }
    }

    /// The API's `targetStorageClass`, present only for transitions.
    pub fn api_target_storage_class(self) -> Option<&'static str> {
        match self {
            Action::Expire => None,
            Action::Transition(c) => Some(c.as_api()),
        }
    }
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `rulePriority`: unique in the policy; lower numbers are applied first.
    pub priority: u32,
    /// `description`, if given.
    pub description: Option<String>,
    /// `selection.tagStatus`.
    pub tag_status: TagStatus,
    /// `selection.tagPrefixList`, `tagPatternList` or (extension) `berthTagRegexList`; present exactly when
    /// `tag_status` is `Tagged`.
    pub filter: Option<TagFilter>,
    /// `selection.storageClass` (default `standard`): the rule selects only images of this class.
    pub storage_class: StorageClass,
    /// `selection.countType` with its `countNumber`.
    pub count: CountType,
    /// `action`.
    pub action: Action,
    /// Extension `selection.berthExclude`: images it excludes are invisible to this rule.
    pub exclude: Option<Exclusion>,
}

/// A parsed lifecycle policy: its rules in priority order, and any policy-wide Berth extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    pub(crate) rules: Vec<Rule>,
    pub(crate) exclude: Option<Exclusion>,
    pub(crate) uses_extensions: bool,
}

impl LifecyclePolicy {
    /// The rules, lowest `rulePriority` first.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Extension `berthExclude` at the top level: images it excludes are invisible to every rule.
    pub fn exclusion(&self) -> Option<&Exclusion> {
        self.exclude.as_ref()
    }

    /// Whether the policy uses any Berth extension (so it would not be accepted by ECR).
    pub fn uses_extensions(&self) -> bool {
        self.uses_extensions
    }
}
