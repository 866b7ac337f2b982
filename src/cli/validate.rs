//! `c2quay validate PATH` and `c2quay schema`.
//!
//! `validate` loads a desired directory (or one manifest file) with [`crate::manifest`] and
//! prints each file as OK / warnings / errors, or one JSON document with `-o json`.
//! Exit codes: 0 all valid (warnings allowed), 1 any file invalid or a directory without
//! manifests (unless `--allow-empty`), 2 usage errors (including a missing or unreadable PATH).
//!
//! An empty desired directory is an error here, not in the agent: to the agent it is a
//! legitimate desired set (nothing should run), but in CI it is almost always a wrong path or
//! a checkout that lost its files, which the agent would take for the removal of every
//! environment (issue 14 item 9).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::manifest::{self, Environment, LoadReport, Problem};

/// Exit code: every file is valid (warnings allowed).
pub const EXIT_VALID: i32 = 0;
/// Exit code: at least one file is invalid.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: usage error (bad flags, missing or unreadable PATH).
pub const EXIT_USAGE: i32 = 2;

/// Arguments of `c2quay validate`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  c2quay validate desired/                  check every *.yaml/*.yml manifest of a GitOps checkout
  c2quay validate desired/shop-staging.yaml check one file (e.g. in a pre-commit hook)
  c2quay validate -o json desired/ | jq .valid
  c2quay validate --allow-empty desired/    accept a directory with no manifest (nothing should run)

Exit codes: 0 all valid (warnings allowed), 1 a file is invalid or the directory has no
manifest (without --allow-empty), 2 usage error.
Errors read `file:line:column: field: message`. Missing Compose files are only warnings here:
validate often runs in CI, away from the host that deploys.")]
pub struct Args {
    /// The desired directory (every *.yaml/*.yml file in it, not recursive) or one manifest file.
    #[arg(value_name = "PATH")]
    pub dir: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Accept a directory with no manifest file (an empty desired set: to the agent, every
    /// environment is removed). Without it, that is an error.
    #[arg(long)]
    pub allow_empty: bool,
}

/// Output formats of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One block per file, for people.
    Text,
    /// One JSON document, for machines.
    Json,
}

/// Runs `validate` and returns the exit code.
pub fn run(args: Args) -> i32 {
    let mut report = match load(&args.dir) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    if !args.allow_empty
        && args.dir.is_dir()
        && report.environments.is_empty()
        && report.problems.is_empty()
    {
        report.problems.push(Problem::file_error(
            &args.dir,
            "no manifest (*.yaml or *.yml) in this desired directory: to the agent every \
             environment it runs is then removed (Orphaned, or taken down with policy.prune: \
             onRemove); check the path, or pass --allow-empty if nothing should run",
        ));
    }
    let mut stdout = std::io::stdout().lock();
    let written = match args.output {
        Format::Text => stdout.write_all(render_text(&report).as_bytes()),
        Format::Json => serde_json::to_writer_pretty(&mut stdout, &render_json(&report))
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(stdout)),
    };
    // A closed pipe (`| head`) is the reader's choice, not an error worth reporting.
    if let Err(e) = written.or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    }) {
        eprintln!("error: cannot write output: {e}");
        return EXIT_USAGE;
    }
    if report.is_valid() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    }
}

/// Prints the JSON Schema of the manifest (pretty) and returns the exit code.
pub fn schema() -> i32 {
    match serde_json::to_string_pretty(&manifest::json_schema()) {
        Ok(text) => {
            println!("{text}");
            EXIT_VALID
        }
        Err(e) => {
            eprintln!("error: cannot render the schema: {e}");
            EXIT_INVALID
        }
    }
}

/// Loads a directory, or one file as a report of its own. `Err` is a usage error message.
fn load(path: &Path) -> Result<LoadReport, String> {
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if metadata.is_dir() {
        return manifest::load_dir(path).map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("{e}{cause}")
        });
    }
    Ok(match manifest::load_file(path) {
        Ok(env) => LoadReport {
            problems: env.warnings.clone(),
            environments: vec![env],
        },
        Err(problems) => LoadReport {
            environments: Vec::new(),
            problems,
        },
    })
}

/// The human output: one block per file in name order, then a summary line.
pub fn render_text(report: &LoadReport) -> String {
    let mut files: BTreeMap<&Path, (Option<&Environment>, Vec<&Problem>)> = BTreeMap::new();
    for env in &report.environments {
        files.entry(env.source.as_path()).or_default().0 = Some(env);
    }
    for problem in &report.problems {
        files
            .entry(problem.file.as_path())
            .or_default()
            .1
            .push(problem);
    }
    let mut out = String::new();
    // A problem of the directory itself (no manifest in it) is not a file.
    files.retain(|file, (env, problems)| {
        let about_directory = env.is_none() && file.is_dir();
        for problem in problems.iter().filter(|_| about_directory) {
            out.push_str(&format!("{}: {problem}\n", problem.severity));
        }
        !about_directory
    });
    let (mut n_valid, mut n_warnings) = (0, 0);
    for (file, (env, problems)) in &files {
        match env {
            Some(env) => {
                n_valid += 1;
                out.push_str(&format!(
                    "ok       {}  ({}, project {}, generation {})\n",
                    file.display(),
                    env.name(),
                    env.project,
                    env.generation
                ));
            }
            None => out.push_str(&format!("invalid  {}\n", file.display())),
        }
        for problem in problems {
            n_warnings += usize::from(!problem.is_error());
            out.push_str(&format!("  {}: {problem}\n", problem.severity));
        }
    }
    let n_invalid = files.len() - n_valid;
    out.push_str(&format!(
        "{} file(s): {n_valid} valid, {n_invalid} invalid, {n_warnings} warning(s)\n",
        files.len()
    ));
    out
}

/// The `-o json` document.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// Valid environments.
    pub environments: Vec<JsonEnvironment<'a>>,
    /// Every error and warning.
    pub problems: &'a [Problem],
    /// True when no problem is an error.
    pub valid: bool,
}

/// One valid environment in `-o json`.
#[derive(Debug, Serialize)]
pub struct JsonEnvironment<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// The manifest file.
    pub file: &'a Path,
    /// The generation hash.
    pub generation: &'a str,
    /// Its warnings.
    pub warnings: &'a [Problem],
}

/// Builds the `-o json` document.
pub fn render_json(report: &LoadReport) -> JsonReport<'_> {
    JsonReport {
        environments: report
            .environments
            .iter()
            .map(|env| JsonEnvironment {
                name: env.name(),
                file: &env.source,
                generation: &env.generation,
                warnings: &env.warnings,
            })
            .collect(),
        problems: &report.problems,
        valid: report.is_valid(),
    }
}
