//! Embeds the git commit and its date for `c2quay --version` and `c2quay_build_info`
//! (`C2QUAY_GIT_COMMIT`, `C2QUAY_BUILD_DATE`). The date is the commit's, not the clock's, so a
//! build of one commit is the same whenever it is made; outside a git checkout both are
//! `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = git(&["log", "-1", "--format=%cI"])
        .and_then(|d| d.get(..10).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=C2QUAY_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=C2QUAY_BUILD_DATE={date}");
    // Rebuilt when HEAD moves: a checkout changes HEAD, a commit the branch's ref. Git names
    // the files (`--git-path`), so a linked worktree, whose `.git` is a file, works too.
    let mut refs = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        refs.push(branch);
    }
    let watched = refs
        .iter()
        .filter_map(|r| git(&["rev-parse", "--git-path", r]));
    for path in watched.filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
