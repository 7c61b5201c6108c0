//! ECR's numeric limits on lifecycle policies, in one place.

/// The longest policy text ECR accepts, in characters (the model's `LifecyclePolicyText` maximum and the
/// "Lifecycle policy length" service quota).
pub const MAX_POLICY_CHARS: usize = 30_720;

/// The shortest policy text `PutLifecyclePolicy` and `StartLifecyclePolicyPreview` accept (a model constraint
/// the API edge checks; repository creation templates allow shorter text, so [`crate::LifecyclePolicy::parse`]
/// does not enforce it).
pub const MIN_POLICY_CHARS: usize = 100;

/// The most rules one policy may hold.
pub const MAX_RULES: usize = 50;

/// The most `*` wildcards one `tagPatternList` entry may contain.
pub const MAX_WILDCARDS_PER_PATTERN: usize = 4;

/// Archived images stay archived at least this many days before a lifecycle rule may expire them, so a
/// `sinceImageTransitioned` rule's `countNumber` is at least this.
pub const MIN_ARCHIVE_DAYS: i64 = 90;

/// Upper bound on the compiled size of one extension regular expression (`berthTagRegexList`,
/// `berthExclude.tagRegexList`), so a policy cannot make evaluation slow or memory-hungry.
pub const MAX_REGEX_COMPILED_BYTES: usize = 1 << 20;
