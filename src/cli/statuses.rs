//! `c2quay status`: each environment's status from the state directory, as a table (`wide`
//! adds columns), JSON or YAML, once or `--watch`ing for changes. Read-only: works with the
//! agent stopped and never creates anything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::Output;
use super::common::{existing_state_dir, print_data};
use crate::error_chain;
use crate::state::{ConditionType, EnvironmentStatus, StateDir};

/// How often `--watch` reads the status files again.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Arguments of `c2quay status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One environment (default: all).
    pub environment: Option<String>,
    /// The state directory.
    #[arg(long, env = "C2QUAY_STATE_DIR", default_value = "/var/lib/c2quay")]
    pub state_dir: PathBuf,
    /// Output format (`wide` adds the observed generation, the releases and the last
    /// reconcile).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// After the first listing, print each environment again whenever its status changes
    /// (one row, or one JSON document per line), until interrupted.
    #[arg(short, long)]
    pub watch: bool,
}

/// Runs `status`.
pub fn status(args: StatusArgs) -> i32 {
    if let Err(message) = existing_state_dir(&args.state_dir) {
        eprintln!("error: {message}");
        return 1;
    }
    let state = match StateDir::open(&args.state_dir) {
        Ok(state) => state,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return 1;
        }
    };
    let (statuses, code) = match read(&state, &args) {
        Ok(read) => read,
        Err(code) => return code,
    };
    // One environment asked for: its object, as kubectl's `get NAME -o json`.
    let printed = match (&args.environment, args.watch) {
        (Some(_), false) => print_data(&statuses[0], args.output),
        (None, false) => print_data(&statuses, args.output),
        (_, true) => print_lines(&statuses, args.output),
    };
    if !printed {
        let one = args.environment.is_some() && !args.watch;
        print_table(&statuses, one, args.output == Output::Wide, true);
    }
    if args.watch {
        watch(&state, &args, statuses);
    }
    code
}

/// Reads the statuses asked for, with the exit code of a listing: every readable one (a
/// status that cannot be read is a warning, and exit 1), or the one named (an error when it
/// cannot be read).
fn read(state: &StateDir, args: &StatusArgs) -> Result<(Vec<EnvironmentStatus>, i32), i32> {
    let (mut statuses, errors) = state.list_statuses();
    let Some(name) = &args.environment else {
        for error in &errors {
            eprintln!("warning: {}", error_chain(error));
        }
        return Ok((statuses, i32::from(!errors.is_empty())));
    };
    statuses.retain(|s| &s.name == name);
    let file = state.status_file(name);
    if let Some(error) = errors.iter().find(|e| e.path() == Some(file.as_path())) {
        // Unreadable, or written by a newer c2quay: say so, not "no status".
        eprintln!("error: {}", error_chain(error));
        return Err(1);
    }
    if statuses.is_empty() {
        let dir = state.root().display();
        eprintln!("error: no status for environment {name} in {dir}");
        return Err(1);
    }
    Ok((statuses, 0))
}

/// Reads the status files every second and prints the environments whose status changed
/// (appeared, or another phase, message, generation, pending count or result), as kubectl's
/// `get -w` does. Runs until the process is interrupted.
fn watch(state: &StateDir, args: &StatusArgs, first: Vec<EnvironmentStatus>) {
    let mut seen: BTreeMap<String, String> =
        first.iter().map(|s| (s.name.clone(), key(s))).collect();
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let (mut statuses, _) = state.list_statuses();
        if let Some(name) = &args.environment {
            statuses.retain(|s| &s.name == name);
        }
        statuses.retain(|s| seen.get(&s.name) != Some(&key(s)));
        if statuses.is_empty() {
            continue;
        }
        for s in &statuses {
            seen.insert(s.name.clone(), key(s));
        }
        if !print_lines(&statuses, args.output) {
            print_table(&statuses, false, args.output == Output::Wide, false);
        }
    }
}

/// What a watcher is told about: a change of any of these prints the environment again.
fn key(s: &EnvironmentStatus) -> String {
    format!(
        "{:?}|{}|{:?}|{:?}|{}|{:?}",
        s.phase,
        s.message,
        s.observed_generation,
        s.applied_generation,
        s.pending_records,
        s.last_result
    )
}

/// JSON: one compact document per line (a stream a script reads line by line); YAML: one
/// document each. False for text and wide.
fn print_lines(statuses: &[EnvironmentStatus], output: Output) -> bool {
    for s in statuses {
        match output {
            Output::Json => match serde_json::to_string(s) {
                Ok(line) => println!("{line}"),
                Err(error) => eprintln!("error: cannot render JSON: {error}"),
            },
            Output::Yaml => {
                println!("---");
                print_data(s, output);
            }
            Output::Text | Output::Wide => return false,
        }
    }
    true
}

/// The status table; `wide` adds columns; for one environment also its releases, its
/// conditions and the whole message. `header` is false for the rows `--watch` adds.
fn print_table(statuses: &[EnvironmentStatus], one: bool, wide: bool, header: bool) {
    let now = SystemTime::now();
    let mut headers = vec![
        "ENVIRONMENT",
        "PHASE",
        "AGE",
        "APPLIED",
        "PENDING",
        "LAST RESULT",
    ];
    if wide {
        headers.extend(["OBSERVED", "RELEASES", "LAST RECONCILE"]);
    }
    headers.push("MESSAGE");
    let mut table = super::table::new(&headers);
    for s in statuses {
        // AGE: how long the environment has been in or out of Ready (the Ready condition's
        // last transition), as kubectl shows a pod's.
        let age = (s.condition(ConditionType::Ready))
            .map(|c| super::table::age(c.last_transition_time, now))
            .unwrap_or_else(|| "-".into());
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let mut row = vec![
            s.name.clone(),
            s.phase.as_str().to_string(),
            age,
            or_dash(&s.applied_generation),
            s.pending_records.to_string(),
            or_dash(&s.last_result),
        ];
        if wide {
            let releases: Vec<String> = (s.releases.iter())
                .map(|(service, r)| {
                    format!("{service}={}", r.version.as_deref().unwrap_or(&r.image))
                })
                .collect();
            row.push(or_dash(&s.observed_generation));
            row.push(releases.join(","));
            row.push(match s.last_reconcile_at {
                Some(at) => super::table::age(at, now),
                None => "-".into(),
            });
        }
        row.push(match one {
            true => s.message.clone(),
            false => s.message.lines().next().unwrap_or("").to_string(),
        });
        table.add_row(row);
    }
    match header {
        true => super::table::print(&table),
        false => super::table::print_rows(&table),
    }
    let Some(s) = statuses.first().filter(|_| one) else {
        return;
    };
    for (what, revision) in [
        ("applied", &s.applied_revision),
        ("observed", &s.observed_revision),
    ] {
        if let Some(revision) = revision {
            println!("  {what} revision: {revision}");
        }
    }
    for (service, release) in &s.releases {
        let id = (release.image_id.as_deref())
            .map(|id| format!(" ({})", short_id(id)))
            .unwrap_or_default();
        let version = release.version.as_deref().unwrap_or("-");
        println!("  {service}: {version} {}{id}", release.image);
    }
    for c in &s.conditions {
        println!(
            "  condition {:?}={:?} ({}): {}",
            c.type_, c.status, c.reason, c.message
        );
    }
}

/// `sha256:0123456789ab` of an image id.
fn short_id(id: &str) -> String {
    id.chars().take("sha256:".len() + 12).collect()
}
