//! # berth-types
//!
//! The bottom layer of Berth: pure value types shared by every other crate.
//! Digests and their hashing, repository names, tags and references with the exact
//! grammar of the OCI Distribution Specification, media types, and parsing of
//! manifests and indexes into the references they hold.
//!
//! May depend on: nothing but serde, hashing and error helpers. No I/O, no async.

pub mod digest;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod json_limits;
pub mod manifest;
pub mod media;
pub mod name;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use json_limits::{JsonLimitError, JsonLimits};
pub use manifest::{Descriptor, ManifestError, ParsedManifest};
pub use name::{
    validate_repository_name, AccountId, NameError, Reference, RepositoryName, Tag,
    QUALIFIED_PREFIX_LEN,
};
