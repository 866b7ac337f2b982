//! Read-only commands around the status: `history` (the reconciles and the audit log of one
//! environment, oldest first), `wait` (until an environment reaches a phase), `completion`
//! (shell completions from the command line's own definition). None of them writes anything.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::CommandFactory;

use super::common::{existing_state_dir, print_data};
use super::{Cli, Output};
use crate::error_chain;
use crate::state::{Phase, StateDir};

/// Arguments of `c2quay history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The environment.
    pub environment: String,
    /// The state directory.
    #[arg(long, env = "C2QUAY_STATE_DIR", default_value = "/var/lib/c2quay")]
    pub state_dir: PathBuf,
    /// Only the last N entries.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `c2quay wait`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Exit 0 once the phase is reached, 1 on timeout or error.")]
pub struct WaitArgs {
    /// The environment.
    pub environment: String,
    /// The phase to wait for (`Ready`, `RolledBack`, ...).
    #[arg(long = "for", default_value = "Ready", value_parser = parse_phase)]
    pub phase: Phase,
    /// How long to wait.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The state directory.
    #[arg(long, env = "C2QUAY_STATE_DIR", default_value = "/var/lib/c2quay")]
    pub state_dir: PathBuf,
}

/// Arguments of `c2quay completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

fn parse_phase(text: &str) -> Result<Phase, String> {
    Phase::ALL
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            let names: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
            format!("{text:?} is not a phase; one of {}", names.join(", "))
        })
}

/// One line of `history`: a reconcile from the status, or an audit line.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(with = "crate::state::clock::rfc3339")]
    at: SystemTime,
    source: &'static str,
    generation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<String>,
    what: String,
    result: String,
    detail: String,
}

/// Runs `history`: the status's reconcile history and the audit log, merged by time.
pub fn history(args: HistoryArgs) -> i32 {
    let state = match open(&args.state_dir) {
        Ok(state) => state,
        Err(message) => return fail(&message),
    };
    let name = &args.environment;
    let status = match state.read_status(name) {
        Ok(Some(status)) => status,
        Ok(None) => {
            return fail(&format!(
                "no status for environment {name} in {}",
                args.state_dir.display()
            ));
        }
        Err(error) => return fail(&error_chain(&error)),
    };
    let mut entries: Vec<Entry> = status
        .history
        .iter()
        .map(|h| Entry {
            at: h.at,
            source: "reconcile",
            generation: h.generation.clone(),
            revision: h.revision.clone(),
            what: h.action.clone(),
            result: h.result.clone(),
            detail: h.reason.clone(),
        })
        .collect();
    match state.read_audit(name) {
        Ok(events) => entries.extend(events.into_iter().map(|e| Entry {
            at: e.ts,
            source: "audit",
            generation: e.generation,
            revision: e.revision,
            what: e.step,
            result: e.outcome,
            detail: e.message,
        })),
        Err(error) => eprintln!("warning: the audit log: {}", error_chain(&error)),
    }
    entries.sort_by_key(|e| e.at);
    let skip = entries.len().saturating_sub(args.limit);
    let entries = &entries[skip..];
    match args.output {
        Output::Json | Output::Yaml => {
            print_data(&entries, args.output);
        }
        Output::Text | Output::Wide => {
            let mut table =
                super::table::new(&["TIME", "SOURCE", "GENERATION", "WHAT", "RESULT", "DETAIL"]);
            for e in entries {
                table.add_row(vec![
                    humantime::format_rfc3339_seconds(e.at).to_string(),
                    e.source.to_string(),
                    e.generation.clone().unwrap_or_else(|| "-".into()),
                    e.what.clone(),
                    e.result.clone(),
                    e.detail.clone(),
                ]);
            }
            super::table::print(&table);
        }
    }
    0
}

/// How often `wait` reads the status file.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Runs `wait`: polls the status file until the phase is reached or the timeout passes.
pub fn wait(args: WaitArgs) -> i32 {
    let state = match open(&args.state_dir) {
        Ok(state) => state,
        Err(message) => return fail(&message),
    };
    let deadline = Instant::now() + args.timeout;
    let name = &args.environment;
    let mut last = String::from("no status yet");
    loop {
        match state.read_status(name) {
            Ok(Some(status)) if status.phase == args.phase => {
                println!(
                    "{name} is {}: {}",
                    status.phase,
                    status.message.lines().next().unwrap_or("")
                );
                return 0;
            }
            Ok(Some(status)) => {
                last = format!(
                    "{}: {}",
                    status.phase,
                    status.message.lines().next().unwrap_or("")
                )
            }
            Ok(None) => {}
            // A status being replaced can be unreadable for a moment: only the end says so.
            Err(error) => last = error_chain(&error),
        }
        if Instant::now() >= deadline {
            eprintln!(
                "error: {name} is not {} after {}; last: {last}",
                args.phase,
                humantime::format_duration(args.timeout)
            );
            return 1;
        }
        std::thread::sleep(WAIT_POLL);
    }
}

/// Runs `completion`: the shell's completion script on stdout.
pub fn completion(args: CompletionArgs) -> i32 {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "c2quay", &mut std::io::stdout());
    0
}

fn open(dir: &std::path::Path) -> Result<StateDir, String> {
    existing_state_dir(dir)?;
    StateDir::open(dir).map_err(|e| error_chain(&e))
}

fn fail(message: &str) -> i32 {
    eprintln!("error: {message}");
    1
}
