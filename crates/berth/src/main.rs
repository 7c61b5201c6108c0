//! # berth
//!
//! The `berth` binary: parses the command line, loads the configuration, and wires
//! stores, services, listeners and background jobs together. No registry logic lives
//! here; see `docs/ARCHITECTURE.md` for the layers.

mod admin;
mod cli;
mod gc;
mod lifecycle_cli;
mod logging;
mod observe;
mod serve;
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
