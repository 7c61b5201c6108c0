//! # berth
//!
//! The `berth` binary: parses the command line, loads the configuration, and wires
//! stores, services, listeners and background jobs together. No registry logic lives
//! here; see `docs/ARCHITECTURE.md` for the layers.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod admin;
mod background;
mod blob_backend;
mod cli;
mod data_dir;
mod gc;
mod health;
mod lifecycle_cli;
mod listener;
mod logging;
mod malloc;
mod master_key;
mod migrate;
mod migrate_blobs;
mod migrate_progress;
mod observe;
mod policy_cli;
mod serve;
mod stores;
mod tls;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
