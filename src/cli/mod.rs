//! The command line: clap types and one module per subcommand.
//!
//! **Invariant:** only this module knows clap. Each subcommand returns an [`ExitCode`]-like
//! number through [`Outcome`]; `main.rs` only exits with it.

use clap::{Parser, Subcommand};

/// c2quay: a reconciling agent for Docker Compose hosts, gated by a Pact Broker.
#[derive(Debug, Parser)]
#[command(name = "c2quay", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate every manifest in a desired directory.
    Validate(validate::Args),
    /// Print the JSON Schema of the manifest.
    Schema,
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Schema => validate::schema(),
    }
}

pub mod validate;
