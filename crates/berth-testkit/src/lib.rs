//! # berth-testkit
//!
//! Real services that tests run against, started on loopback with generated configuration
//! and gone when the test ends: [`postgres`] (a private PostgreSQL cluster per test binary,
//! a fresh database per test; stopped even when the test process is killed), [`garage`]
//! (a single-node Garage S3 server, stopped on drop) and [`haproxy`] (a round-robin load
//! balancer in front of several servers; stopped even when the test process is killed).
//! Never mocks: a harness whose program is missing panics with what to install; it never
//! skips silently. A dev-dependency only; nothing here ships in the binary.
//!
//! May depend on: nothing of Berth's.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod garage;
pub mod haproxy;
pub mod postgres;
mod watchdog;
