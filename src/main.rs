//! The `c2quay` binary: parse the command line, run it, exit with its code.

use clap::Parser;

fn main() {
    let cli = c2quay::cli::Cli::parse();
    std::process::exit(c2quay::cli::run(cli));
}
