//! # berth-types
//!
//! The bottom layer of Berth: pure value types shared by every other crate.
//! Digests and their hashing, repository names, tags and references with the exact
//! grammar of the OCI Distribution Specification, media types, and parsing of
//! manifests and indexes into the references they hold.
//!
//! May depend on: nothing but serde, hashing and error helpers. No I/O, no async.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod digest;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod json_limits;
pub mod manifest;
pub mod media;
pub mod name;
pub mod telemetry;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use json_limits::{JsonLimitError, JsonLimits};
pub use manifest::{Descriptor, ManifestError, ParsedManifest};
pub use name::{
    valid_name_component, validate_repository_name, AccountId, NameError, Reference,
    RepositoryName, Tag, QUALIFIED_PREFIX_LEN,
};
