//! The command line: clap types and one module per subcommand.
//!
//! **Invariant:** only this module knows clap. Each subcommand returns its process exit code;
//! `main.rs` only initialises logging and exits with it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

mod common;
mod control;
mod deploy;
mod doctor;
mod inspect;
mod interrupt;
mod ops;
mod progress;
mod statuses;
mod sync;
mod table;
pub mod validate;

/// Exit codes shared by every subcommand (documented in `--help` and the README).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (deployed, up to date, valid)
  1  invalid input or an error before anything changed (bad manifest, Docker unreachable)
  2  usage error
  3  gate blocked: the broker said no or unknown, or could not be asked; nothing on the host changed
  4  deploy failed and was rolled back to the previous images
  5  deploy failed and the rollback failed, or was off / dry-run
  6  deployed and healthy, but a broker record failed (it waits in the outbox)
  130/143  interrupted by SIGINT/SIGTERM: the deploy finished within --grace, or was left to the journal (the next run resumes it)";

/// c2quay: a reconciling agent for Docker Compose hosts, gated by a Pact Broker.
#[derive(Debug, Parser)]
#[command(name = "c2quay", version = VERSION, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log format: `text` on a terminal, `json` for journald and log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "C2QUAY_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Output formats of reporting commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A human-readable table or text.
    Text,
    /// JSON for machines.
    Json,
    /// YAML for machines and people (the same document as JSON).
    Yaml,
    /// The table with more columns (where a command has them; otherwise the text).
    Wide,
}

/// Where manifests and state live (shared by most subcommands).
#[derive(Debug, Clone, clap::Args)]
pub struct Dirs {
    /// The desired directory (one manifest per environment).
    #[arg(long, env = "C2QUAY_DESIRED", default_value = "/etc/c2quay/desired")]
    pub desired: PathBuf,
    /// The state directory (status, journal, outbox, snapshots, reports, locks).
    #[arg(long, env = "C2QUAY_STATE_DIR", default_value = "/var/lib/c2quay")]
    pub state_dir: PathBuf,
}

/// `--version`: the crate version, the git commit and the commit's date.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("C2QUAY_GIT_COMMIT"),
    ", ",
    env!("C2QUAY_BUILD_DATE"),
    ")"
);

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: converge every environment and keep converging.
    Agent(ops::AgentArgs),
    /// Validate every manifest in a desired directory (for GitOps CI).
    Validate(validate::Args),
    /// Print the JSON Schema of the manifest (for editors).
    Schema,
    /// Deploy one environment now: gate, apply, smoke, record (rollback on failure).
    Deploy(deploy::DeployArgs),
    /// Ask the broker whether the desired versions can be deployed (read-only).
    Verify(deploy::VerifyArgs),
    /// Roll an environment back to the images of a snapshot.
    Rollback(deploy::RollbackArgs),
    /// Show the status of environments (works with the agent stopped).
    Status(statuses::StatusArgs),
    /// Show what the agent would do now, including the broker's answers (read-only).
    Plan(ops::PlanArgs),
    /// Ask the agent to try a failed generation again.
    Retry(control::RetryArgs),
    /// Suspend an environment: the agent only observes it until `resume` or a manifest change.
    Suspend(control::SuspendArgs),
    /// Resume a suspended environment: the agent reconciles it at its next pass.
    Resume(control::ResumeArgs),
    /// Check Docker, Compose, the state and desired directories, and each broker.
    Doctor(doctor::DoctorArgs),
    /// Show the reconciles and the audit log of one environment, oldest first (read-only).
    History(inspect::HistoryArgs),
    /// Wait until an environment reaches a phase (`--for Ready`), for scripts and CI.
    Wait(inspect::WaitArgs),
    /// Fetch and fast-forward the desired checkout (refuses a dirty or diverged one).
    Sync(sync::SyncArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(inspect::CompletionArgs),
}

impl Cli {
    /// The log format chosen.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// The log level when `RUST_LOG` is not set: `info` for the agent and for JSON logs (a
    /// machine reads them), `warn` for a person at a command: a deploy's progress is printed
    /// by the command itself, once, not again as log lines.
    pub fn default_log_level(&self) -> &'static str {
        match (&self.command, self.log_format) {
            (Command::Agent(_), _) | (_, LogFormat::Json) => "info",
            _ => "warn",
        }
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Schema => validate::schema(),
        Command::Deploy(args) => common::block_on(deploy::deploy(args, cli.log_format)),
        Command::Verify(args) => common::block_on(deploy::verify(args)),
        Command::Rollback(args) => common::block_on(deploy::rollback(args, cli.log_format)),
        Command::Agent(args) => common::block_on(ops::agent(args)),
        Command::Status(args) => statuses::status(args),
        Command::Plan(args) => common::block_on(ops::plan(args)),
        Command::Retry(args) => control::retry(args),
        Command::Suspend(args) => control::suspend(args),
        Command::Resume(args) => control::resume(args),
        Command::Doctor(args) => common::block_on(doctor::doctor(args)),
        Command::History(args) => inspect::history(args),
        Command::Wait(args) => inspect::wait(args),
        Command::Completion(args) => inspect::completion(args),
        Command::Sync(args) => common::block_on(sync::run(args)),
    }
}
