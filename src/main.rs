//! The `c2quay` binary: parse the command line, initialise logging, run, exit with its code.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    die_quietly_on_closed_output();
    let cli = c2quay::cli::Cli::parse();
    init_logging(cli.log_format(), cli.default_log_level());
    std::process::exit(c2quay::cli::run(cli));
}

/// Logs go to stderr: human-readable lines, or JSON lines for journald and log shippers.
/// `RUST_LOG` overrides the default level; colours only when stderr is a terminal.
fn init_logging(format: c2quay::cli::LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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

/// A closed stdout or stderr (`c2quay status | head -1`) ends every command the way coreutils
/// do: killed by SIGPIPE (a shell reports exit 141), quietly, with no panic message and no
/// backtrace. The convention is chosen over `exit 0` because the output really was cut short,
/// and `set -o pipefail` scripts tell that apart from a complete answer.
///
/// Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE and `println!` panics on
/// it ("failed printing to stdout: Broken pipe"); this hook turns exactly that panic into the
/// signal. SIGPIPE itself stays ignored: a write to a closed socket or child pipe (the agent's
/// HTTP clients, `docker compose`) is an error the code handles, not the end of the agent.
fn die_quietly_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let epipe = format!("(os error {})", libc::EPIPE);
        let payload = info.payload();
        let message = (payload.downcast_ref::<String>().map(String::as_str))
            .or_else(|| payload.downcast_ref::<&str>().copied());
        let closed_output = message.is_some_and(|message| {
            message.starts_with("failed printing to std") && message.ends_with(&epipe)
        });
        if closed_output {
            // SAFETY: restoring the default disposition of one signal and raising it; nothing
            // else runs in this process afterwards.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
            // SIGPIPE blocked in this thread: the shell's number for it.
            std::process::exit(128 + libc::SIGPIPE);
        }
        default(info);
    }));
}
