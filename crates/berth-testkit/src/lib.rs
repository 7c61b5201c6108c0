//! # berth-testkit
//!
//! Real services that tests run against, started on loopback and gone when the test
//! process ends (even when it is killed): [`postgres`] (a private PostgreSQL cluster per
//! test binary, a fresh database per test). A dev-dependency only; nothing here ships in
//! the binary.
//!
//! May depend on: nothing of Berth's.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod postgres;
