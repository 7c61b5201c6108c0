//! Size limits of policy documents. The limit is an argument of [`Policy::parse`](crate::Policy::parse); these
//! are the numbers AWS publishes.

use crate::error::{PolicyError, PolicyErrorKind};

/// ECR repository policy text (`SetRepositoryPolicy.policyText`): at most 10,240 characters, whitespace included.
pub const ECR_REPOSITORY_POLICY_MAX_CHARS: usize = 10_240;
/// ECR registry policy text (`PutRegistryPolicy.policyText`): at most 10,240 characters, whitespace included.
pub const ECR_REGISTRY_POLICY_MAX_CHARS: usize = 10_240;
/// IAM inline policies of one user: at most 2,048 characters in total, whitespace not counted. (AWS applies the
/// quota to the sum of a user's inline policies; checking the sum is the caller's job, see
/// [`non_whitespace_chars`].)
pub const IAM_USER_INLINE_POLICY_MAX_CHARS: usize = 2_048;
/// IAM inline policies of one group: at most 5,120 characters in total, whitespace not counted.
pub const IAM_GROUP_INLINE_POLICY_MAX_CHARS: usize = 5_120;
/// IAM inline policies of one role: at most 10,240 characters in total, whitespace not counted.
pub const IAM_ROLE_INLINE_POLICY_MAX_CHARS: usize = 10_240;
/// One IAM managed policy: at most 6,144 characters, whitespace not counted.
pub const IAM_MANAGED_POLICY_MAX_CHARS: usize = 6_144;

/// How long a policy document may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// No limit (for documents already validated on the way in, when loading them from storage).
    Unlimited,
    /// At most this many characters, whitespace included (ECR's rule).
    Chars(usize),
    /// At most this many characters not counting whitespace (IAM's rule).
    NonWhitespaceChars(usize),
}

impl SizeLimit {
    pub const ECR_REPOSITORY_POLICY: SizeLimit = SizeLimit::Chars(ECR_REPOSITORY_POLICY_MAX_CHARS);
    pub const ECR_REGISTRY_POLICY: SizeLimit = SizeLimit::Chars(ECR_REGISTRY_POLICY_MAX_CHARS);
    pub const IAM_USER_INLINE_POLICY: SizeLimit =
        SizeLimit::NonWhitespaceChars(IAM_USER_INLINE_POLICY_MAX_CHARS);
    pub const IAM_GROUP_INLINE_POLICY: SizeLimit =
        SizeLimit::NonWhitespaceChars(IAM_GROUP_INLINE_POLICY_MAX_CHARS);
    pub const IAM_ROLE_INLINE_POLICY: SizeLimit =
        SizeLimit::NonWhitespaceChars(IAM_ROLE_INLINE_POLICY_MAX_CHARS);
    pub const IAM_MANAGED_POLICY: SizeLimit =
        SizeLimit::NonWhitespaceChars(IAM_MANAGED_POLICY_MAX_CHARS);

    pub(crate) fn check(self, text: &str) -> Result<(), PolicyError> {
        let (actual, limit, counts_whitespace) = match self {
            SizeLimit::Unlimited => return Ok(()),
            SizeLimit::Chars(limit) => (text.chars().count(), limit, true),
            SizeLimit::NonWhitespaceChars(limit) => (non_whitespace_chars(text), limit, false),
        };
        if actual > limit {
            return Err(PolicyError::new(PolicyErrorKind::TooLarge {
                actual,
                limit,
                counts_whitespace,
            }));
        }
        Ok(())
    }
}

/// Characters of `text` that are not whitespace: what IAM counts against its policy size quotas.
pub fn non_whitespace_chars(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}
