//! # berth-access
//!
//! Identity and access, shared by every edge (`/v2`, ECR, IAM/STS and the AWS-shaped
//! services to come):
//! * [`auth`]: the caller of a request, SigV4 authentication against the [`IamStore`]'s
//!   access keys, and the IAM decision (identity policies, the repository policy and the
//!   registry policy, with the request context);
//! * [`key_cache`]: active access keys reused for at most 2 s instead of read per request;
//! * [`token`]: registry login tokens and layer download grants;
//! * [`v2_credentials`]: what a `/v2` request's `Authorization` header presents;
//! * [`resource`]: what an operation acts on ([`AuthorizedOperation`]), authorized once
//!   in dispatch by [`ResourcePolicies::authorize`];
//! * [`resource_policies`]: repository and registry policies, parsed once and cached;
//! * [`rate_limit`]: request quotas per account and action;
//! * [`registry_hosts`]: which account's registry a host name addresses.
//!
//! Errors are one [`AccessError`]; each edge maps it to its wire format.
//!
//! May depend on: `berth-types`, `berth-meta` (the store traits, not SQL), `berth-iam`,
//! `berth-sigv4`. Knows nothing of HTTP routing or wire formats; never touches SQL or files.
//!
//! [`IamStore`]: berth_meta::IamStore
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod auth;
pub mod error;
pub mod key_cache;
pub mod rate_limit;
pub mod registry_hosts;
pub mod resource;
pub mod resource_policies;
pub mod token;
pub mod v2_credentials;

pub use auth::{authorize_identity, authorize_with, Authenticator, Caller, ConnInfo, Prechecked};
pub use error::AccessError;
pub use registry_hosts::RegistryHosts;
pub use resource::{AuthorizedOperation, RequestEnv, RequestTags, Requirement, Resource};
pub use resource_policies::{ApplicablePolicies, ResourcePolicies};
