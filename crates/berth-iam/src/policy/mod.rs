//! Policy documents: the IAM JSON grammar (`parse`), its compiled form (`model`), the `Principal` element
//! (`principal`) and size limits ([`limits`]).

pub mod limits;
pub(crate) mod model;
pub(crate) mod parse;
pub(crate) mod principal;

pub use model::{Effect, Policy, PolicyKind, PolicyVersion};
