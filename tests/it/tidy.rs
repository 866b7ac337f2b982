//! Tidy: reads the source tree and enforces the architecture invariants of `ARCHITECTURE.md`
//! that a grep can check (rust-analyzer's `tidy.rs` is the model). Each check fails naming the
//! file and line and the rule it breaks.
//!
//! The module and directory names live in the constants below, so a rename (for example
//! `compose` to `docker`) is a one-line change here.

use std::fs;
use std::path::{Path, PathBuf};

/// The Docker adapter: the only module that builds argv for `docker` or names it as a program.
const DOCKER_MODULE: &str = "src/docker/";
/// The git adapter: the only module that names `git` as a program (it runs it through the
/// process runner, like the Docker adapter runs Compose).
const GIT_MODULE: &str = "src/git/";
/// The child-process runner: the only file that spawns processes.
const PROCESS_RUNNER: &str = "src/docker/run.rs";
/// The broker client: the only module that knows HAL shapes.
const BROKER_MODULE: &str = "src/broker/";
/// Modules that talk HTTP with `reqwest`: the broker client and the http smoke checks.
const HTTP_MODULES: &[&str] = &[BROKER_MODULE, "src/smoke/"];
/// The pure planner (a file and its directory of tests).
const PLANNER: &[&str] = &["src/plan.rs", "src/plan/"];
/// The longest a source file may grow before it is split.
const MAX_LINES: usize = 600;
/// This file: it names every pattern it looks for.
const SELF: &str = "tests/it/tidy.rs";

/// Files allowed over [`MAX_LINES`] (none: split a file before it gets there).
const ALLOWED_LONG_FILES: &[&str] = &[];

/// Spawns outside the runner (none: Compose and the smoke exec check both use it).
const ALLOWED_SPAWNS: &[&str] = &[];

/// HAL knowledge outside the broker client (none: `doctor` asks `HttpBroker::diagnose`).
const ALLOWED_HAL: &[&str] = &[];

/// `reqwest` outside the HTTP modules (none: `manifest` validates URLs with the `url` crate).
const ALLOWED_REQWEST: &[&str] = &[];

/// One Rust source file, with its path relative to the workspace root (`/`-separated).
struct Source {
    path: String,
    text: String,
}

impl Source {
    fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.text.lines().enumerate().map(|(i, l)| (i + 1, l))
    }

    /// Lines with comments removed (doc comments included), numbered from 1.
    fn code_lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.lines().map(|(n, l)| (n, strip_comment(l)))
    }

    fn is_under(&self, prefix: &str) -> bool {
        if prefix.ends_with('/') {
            self.path.starts_with(prefix)
        } else {
            self.path == prefix
        }
    }

    fn is_under_any(&self, prefixes: &[&str]) -> bool {
        prefixes.iter().any(|p| self.is_under(p))
    }
}

/// `line` without a trailing `//` comment (a `//` inside a string literal is kept).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dirs` (relative to the workspace root), sorted.
fn sources(dirs: &[&str]) -> Vec<Source> {
    let root = root();
    let mut files = Vec::new();
    for dir in dirs {
        collect(&root, &root.join(dir), &mut files);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(!files.is_empty(), "tidy found no sources under {dirs:?}");
    files
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<Source>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under the root");
            let rel = rel.to_string_lossy().replace('\\', "/");
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.push(Source { path: rel, text });
        }
    }
}

/// Panics listing every problem, one `file:line: rule` per line.
fn report(rule: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "tidy: {rule}\n{}\n",
        problems.join("\n")
    );
}

/// Whether `word` occurs in `line` as a whole identifier.
fn has_word(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let problems = sources(&["src", "emulator/src"])
        .iter()
        .filter(|s| {
            let first = s.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            !first.starts_with("//!")
        })
        .map(|s| format!("{}:1: no `//!` module doc at the top", s.path))
        .collect();
    report(
        "every file under src/ starts with a `//!` module doc",
        problems,
    );
}

#[test]
fn no_source_file_passes_the_line_limit() {
    let problems = sources(&["src", "emulator/src"])
        .iter()
        .filter(|s| !ALLOWED_LONG_FILES.contains(&s.path.as_str()))
        .filter_map(|s| {
            let n = s.text.lines().count();
            (n > MAX_LINES).then(|| format!("{}:{}: {n} lines; split it", s.path, MAX_LINES + 1))
        })
        .collect();
    report(
        &format!("no source file passes {MAX_LINES} lines"),
        problems,
    );
}

#[test]
fn only_the_process_runner_spawns_processes() {
    let patterns = ["tokio::process", "std::process::Command", "Command::new"];
    let mut problems = Vec::new();
    for s in sources(&["src"]) {
        if s.is_under(PROCESS_RUNNER) || ALLOWED_SPAWNS.contains(&s.path.as_str()) {
            continue;
        }
        for (n, line) in s.code_lines() {
            for p in patterns.iter().filter(|p| line.contains(**p)) {
                problems.push(format!("{}:{n}: `{p}` outside {PROCESS_RUNNER}", s.path));
            }
        }
    }
    report(
        &format!("only {PROCESS_RUNNER} spawns child processes"),
        problems,
    );
}

#[test]
fn only_the_docker_module_names_docker_as_a_program() {
    // `"docker"` as an argument of a constructor of a program path or command, or converted
    // into an owned program name; a label such as `report.ok("docker", ...)` is not a program.
    let patterns = [
        "new(\"docker\")",
        "from(\"docker\")",
        "plugin(\"docker\")",
        "program(\"docker\")",
        "which(\"docker\")",
        "\"docker\".into()",
        "\"docker\".to_string()",
        "\"docker\".to_owned()",
        "\"docker\".as_ref()",
        "docker: \"docker\"",
        "program: \"docker\"",
    ];
    let mut problems = Vec::new();
    for s in sources(&["src"]) {
        if s.is_under(DOCKER_MODULE) {
            continue;
        }
        for (n, line) in s.code_lines() {
            for p in patterns.iter().filter(|p| line.contains(**p)) {
                problems.push(format!("{}:{n}: `{p}` outside {DOCKER_MODULE}", s.path));
            }
        }
    }
    report(&format!("only {DOCKER_MODULE} runs `docker`"), problems);
}

#[test]
fn only_the_git_module_names_git_as_a_program() {
    let patterns = [
        "new(\"git\")",
        "from(\"git\")",
        "\"git\".into()",
        "\"git\".to_string()",
    ];
    let mut problems = Vec::new();
    for s in sources(&["src"]) {
        if s.is_under(GIT_MODULE) {
            continue;
        }
        for (n, line) in s.code_lines() {
            for p in patterns.iter().filter(|p| line.contains(**p)) {
                problems.push(format!("{}:{n}: `{p}` outside {GIT_MODULE}", s.path));
            }
        }
    }
    report(&format!("only {GIT_MODULE} runs `git`"), problems);
}

#[test]
fn only_the_broker_module_knows_hal() {
    let patterns = ["\"_links\"", "\"_embedded\"", "\"pb:", "\"href\""];
    let mut problems = Vec::new();
    for s in sources(&["src"]) {
        if s.is_under(BROKER_MODULE) || ALLOWED_HAL.contains(&s.path.as_str()) {
            continue;
        }
        for (n, line) in s.code_lines() {
            for p in patterns.iter().filter(|p| line.contains(**p)) {
                problems.push(format!("{}:{n}: HAL `{p}` outside {BROKER_MODULE}", s.path));
            }
        }
    }
    report(&format!("only {BROKER_MODULE} knows HAL shapes"), problems);
}

#[test]
fn only_the_http_modules_use_reqwest() {
    let mut problems = Vec::new();
    for s in sources(&["src"]) {
        if s.is_under_any(HTTP_MODULES) || ALLOWED_REQWEST.contains(&s.path.as_str()) {
            continue;
        }
        for (n, line) in s.code_lines() {
            if has_word(line, "reqwest") {
                problems.push(format!(
                    "{}:{n}: `reqwest` outside {HTTP_MODULES:?}",
                    s.path
                ));
            }
        }
    }
    report(&format!("only {HTTP_MODULES:?} use reqwest"), problems);
}

#[test]
fn the_planner_is_pure() {
    let words = ["async", "tokio"];
    let calls = ["SystemTime::now", "Instant::now"];
    let mut problems = Vec::new();
    let planner: Vec<Source> = sources(&["src"])
        .into_iter()
        .filter(|s| s.is_under_any(PLANNER))
        .collect();
    assert!(!planner.is_empty(), "tidy: no planner under {PLANNER:?}");
    for s in &planner {
        for (n, line) in s.code_lines() {
            let found = words.iter().filter(|w| has_word(line, w));
            let found = found.chain(calls.iter().filter(|c| line.contains(**c)));
            for p in found {
                problems.push(format!("{}:{n}: `{p}` in the pure planner", s.path));
            }
        }
    }
    report(
        "the planner does no IO, is not async and never reads the clock",
        problems,
    );
}

#[test]
fn tests_neither_expect_panics_nor_skip_without_a_reason() {
    let mut problems = Vec::new();
    for s in sources(&["src", "tests", "emulator/src", "emulator/tests"]) {
        if s.path == SELF {
            continue;
        }
        for (n, line) in s.code_lines() {
            let line = line.trim_start();
            if line.starts_with("#[should_panic") {
                problems.push(format!(
                    "{}:{n}: `#[should_panic]`: return a Result or assert the error",
                    s.path
                ));
            }
            if line.starts_with("#[ignore]") {
                problems.push(format!(
                    "{}:{n}: `#[ignore]` without a reason: write `#[ignore = \"why\"]`",
                    s.path
                ));
            }
        }
    }
    report(
        "no `#[should_panic]`; `#[ignore]` only with a reason",
        problems,
    );
}

#[test]
fn the_library_denies_missing_docs() {
    let lib = fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs");
    assert!(
        lib.lines().any(|l| l.trim() == "#![deny(missing_docs)]"),
        "tidy: src/lib.rs:1: no `#![deny(missing_docs)]`: every public item is documented"
    );
}

#[test]
fn the_allowlists_name_files_that_exist() {
    let root = root();
    let lists = [
        ALLOWED_LONG_FILES,
        ALLOWED_SPAWNS,
        ALLOWED_HAL,
        ALLOWED_REQWEST,
    ];
    let problems: Vec<String> = lists
        .iter()
        .flat_map(|l| l.iter())
        .chain([PROCESS_RUNNER].iter())
        .filter(|p| !root.join(p).exists())
        .map(|p| format!("{p}: listed in tidy.rs but missing: drop it from the list"))
        .collect();
    report("tidy's lists name existing files", problems);
}

#[test]
fn comments_are_stripped_but_strings_are_kept() {
    assert_eq!(strip_comment("let a = 1; // async"), "let a = 1; ");
    assert_eq!(strip_comment("/// uses tokio"), "");
    assert_eq!(strip_comment("f(\"http://x\") // c"), "f(\"http://x\") ");
    assert_eq!(strip_comment("f(\"a\\\"//b\")"), "f(\"a\\\"//b\")");
    assert!(has_word("async fn f()", "async"));
    assert!(!has_word("fn is_asynchronous()", "async"));
}
