//! # berth-iam
//!
//! IAM for Berth, as pure logic: the policy language (parse, validate, compile), ARNs, and policy evaluation with
//! AWS semantics. It answers one question — *may this principal perform this action on this resource, given these
//! policies and this request context?* — and explains the answer.
//!
//! **Responsible for:** parsing policy documents in the IAM JSON grammar into a compiled form ([`Policy::parse`]),
//! rejecting invalid ones with a [`PolicyError`] that names the statement and field, ARNs ([`Arn`] and the
//! builders), and evaluating a [`Request`] into a [`Decision`] ([`evaluate()`]) that names the deciding statement and
//! formats the AWS `AccessDenied` message ([`Decision::denial_message`]).
//!
//! **Not responsible for:** storing users, groups, keys or policies, authenticating requests (SigV4), or mapping
//! operations to actions. The server gathers the caller's policies and the resource's policy and asks here.
//!
//! **May depend on:** nothing of Berth's; only `serde_json` (the document grammar), `time` (dates), `ipnet`
//! (CIDR blocks) and `thiserror`. No I/O: no HTTP, no SQL, no files, no clock (the caller passes the time).
//!
//! ## Grammar
//! `Version` (`2012-10-17`, or `2008-10-17`, the default, in which `${...}` is literal text), `Id`, and
//! `Statement` (an object or an array). A statement has `Sid`, `Effect` (`Allow`/`Deny`), `Action` or `NotAction`,
//! `Resource` or `NotResource`, `Principal` or `NotPrincipal` (resource-based policies only), and `Condition`.
//! Unknown fields, both forms of one element, a missing `Effect`/`Action`, a missing `Resource` in an identity-based
//! policy, a principal in an identity-based policy or none in a resource-based one, `NotPrincipal` with `Allow`,
//! duplicate `Sid`s, unknown condition operators, malformed ARNs, values of the wrong type for their operator and
//! oversize documents ([`SizeLimit`], with AWS's numbers in [`limits`]) are errors. A resource-based statement
//! without `Resource` applies to the resource the policy is attached to (as ECR repository policies are written).
//!
//! ## Matching
//! - Actions: `service:Action`, case-insensitive, with `*` and `?`.
//! - `Resource`: case-sensitive; each colon-separated ARN segment matches on its own, the resource part (after the
//!   fifth colon) as a whole; a `*` that ends a segment may expand across the following colons (so
//!   `arn:aws:ecr:*` covers every ECR ARN), a `*` inside a segment may not. `ArnLike`/`ArnEquals` compare all six
//!   segments strictly one by one. The `arn_pattern` module has examples.
//! - Policy variables `${aws:username}`, `${aws:userid}`, `${aws:PrincipalAccount}`, `${aws:PrincipalTag/k}`, any
//!   single-valued string key, with `${key, 'default'}` and the escapes `${*}`, `${?}`, `${$}`, in `Resource` and in
//!   string and ARN condition values. A variable with no value and no default makes that value match nothing.
//! - Conditions: every operator in the task list with `...IfExists`, `ForAnyValue:`/`ForAllValues:`, and `Null`
//!   (see the `condition` module for the exact rules, including absent keys and negated operators).
//!
//! ## Evaluation (see [`evaluate()`])
//! An explicit `Deny` in any applicable policy wins. The account root acting in its own account is allowed
//! everything else: identity-based policies cannot restrict it (AWS cannot attach them to root), but an explicit
//! deny in a repository or registry policy does bind it, as it does in AWS. Same account: an identity-based allow,
//! or a resource-based allow naming the caller itself. Cross account: both sides. Otherwise implicit deny.
//!
//! ## Deviations from AWS (documented, deliberate)
//! - No SCPs, RCPs, permissions boundaries or session policies (Berth has no organizations or roles to carry them).
//! - Condition keys are those of [`Context`] plus any service key passed in [`Context::extra`]; policy variables
//!   substitute only single-valued string or boolean keys.
//! - Operator names are accepted case-insensitively (AWS documents them in one spelling).
//! - `NotPrincipal` exempts an IAM user only when both its ARN and its account are listed (AWS's own advice; AWS
//!   checks the account before the user), and it is rejected with `Allow` (AWS no longer supports that form).
//! - Values of the wrong type for their operator (`"NumericEquals": {"k": "ten"}`) are rejected when the policy is
//!   parsed instead of never matching.
//!
//! ## Performance
//! Policies are compiled once: actions pre-split into exact names and globs, resource patterns pre-split into
//! ARN segments, CIDRs, numbers and dates parsed, condition keys resolved to an enum. [`evaluate()`] allocates
//! nothing; the micro-benchmark is `cargo test --release -p berth-iam --test bench -- --ignored --nocapture`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod arn;
pub(crate) mod arn_pattern;
pub(crate) mod condition;
pub mod error;
pub mod evaluate;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod policy;
pub mod request;
pub(crate) mod wildcard;

pub use arn::{
    account_root_arn, ecr_repository_arn, iam_group_arn, iam_user_arn, is_account_id, Arn, ArnError,
};
pub use error::{Location, PolicyError, PolicyErrorKind};
pub use evaluate::{evaluate, Decision, PolicySource, Reason, StatementRef};
pub use policy::limits::{self, non_whitespace_chars, SizeLimit};
pub use policy::{Effect, Policy, PolicyKind, PolicyVersion};
pub use request::{Context, Principal, PrincipalKind, Request, Value};
