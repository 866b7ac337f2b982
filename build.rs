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
    // Rebuilt when HEAD moves: a checkout changes .git/HEAD, a commit the branch's ref.
    let mut watched = vec![".git/HEAD".to_string(), ".git/packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(format!(".git/{branch}"));
    }
    for path in watched.iter().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
