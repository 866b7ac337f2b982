//! The `c2quay` binary: parse the command line, initialise logging, run, exit with its code.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = c2quay::cli::Cli::parse();
    init_logging(cli.log_format());
    std::process::exit(c2quay::cli::run(cli));
}

/// Logs go to stderr: human-readable lines, or JSON lines for journald and log shippers.
/// `RUST_LOG` overrides the default level (`info`).
fn init_logging(format: c2quay::cli::LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        c2quay::cli::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        c2quay::cli::LogFormat::Text => builder.with_target(false).init(),
    }
}
