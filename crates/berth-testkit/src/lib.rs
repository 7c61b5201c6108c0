//! # berth-testkit
//!
//! Real servers for tests, started on loopback with generated configuration in a
//! temporary directory and stopped when dropped: never mocks. A harness whose program is
//! missing panics with what to install; it never skips silently.
//!
//! A dev-dependency only. May depend on: nothing of Berth.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod garage;
