//! The commit HEAD is at, read from the git directory's files, without a process: what
//! `version: { from: git }` resolves to when a manifest is loaded.
//!
//! Loading the desired set is synchronous and runs in the agent's main loop, which never waits
//! for a process ([`super::read_revision`] runs `git` and is read lazily, by a reconcile). HEAD
//! is a few small files in git's documented layout (gitrepository-layout(5)): `HEAD` (a commit,
//! or `ref: refs/heads/<branch>`), the branch as a loose ref file or a line of `packed-refs`, in
//! the common directory of a linked work tree (`commondir`). The tests check the answer against
//! `git rev-parse HEAD` for each of those forms. A repository with the `reftable` ref format is
//! refused with a message, not guessed.

use std::path::{Path, PathBuf};

use super::{Error, Result, find_git_dir};

/// The full object name of the commit HEAD of the work tree holding `dir` is at (40 hex
/// digits, 64 in a SHA-256 repository, lowercase); `Ok(None)` when the branch has no commit
/// yet; [`Error::NotAWorkTree`] when `dir` is in no work tree.
pub fn head_commit(dir: &Path) -> Result<Option<String>> {
    let git_dir = find_git_dir(dir).ok_or_else(|| Error::NotAWorkTree {
        dir: dir.to_path_buf(),
    })?;
    let unreadable = |detail: String| Error::Unreadable {
        dir: dir.to_path_buf(),
        detail,
    };
    let common = common_dir(&git_dir);
    let mut content = read_trimmed(&git_dir.join("HEAD"))
        .ok_or_else(|| unreadable(format!("cannot read {}", git_dir.join("HEAD").display())))?;
    // A symbolic ref may point at another one; git itself follows at most 5.
    for _ in 0..5 {
        let Some(name) = content.strip_prefix("ref:").map(str::trim) else {
            return object_name(&content)
                .map(Some)
                .ok_or_else(|| unreadable(format!("HEAD holds {content:?}, not a commit")));
        };
        if !name.starts_with("refs/") || name.split('/').any(|part| part == ".." || part.is_empty())
        {
            return Err(unreadable(format!("HEAD points at {name:?}, not a ref")));
        }
        if common.join("reftable").is_dir() {
            return Err(unreadable(
                "the repository stores its refs as a reftable, which c2quay does not read without \
                 git; convert it with `git refs migrate --ref-format=files`"
                    .into(),
            ));
        }
        // Per-work-tree refs live in the work tree's git directory, the others in the common one.
        let loose = [&git_dir, &common]
            .iter()
            .find_map(|base| read_trimmed(&base.join(name)));
        match loose {
            Some(next) => content = next,
            None => return Ok(packed_ref(&common, name)),
        }
    }
    Err(unreadable(
        "HEAD is a chain of more than 5 symbolic refs".into(),
    ))
}

/// The common git directory of a linked work tree (its `commondir` file), else `git_dir`.
fn common_dir(git_dir: &Path) -> PathBuf {
    match read_trimmed(&git_dir.join("commondir")) {
        Some(common) if Path::new(&common).is_absolute() => PathBuf::from(common),
        Some(common) => git_dir.join(common),
        None => git_dir.to_path_buf(),
    }
}

/// `name`'s commit in `packed-refs` (`<sha> <name>` lines; `#` and `^` lines are not refs).
fn packed_ref(common: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with('^'))
        .filter_map(|line| line.split_once(' '))
        .find(|(_, refname)| refname.trim() == name)
        .and_then(|(sha, _)| object_name(sha))
}

/// `text` as a lowercase object name when it is one (40 or 64 hex digits).
fn object_name(text: &str) -> Option<String> {
    let text = text.trim();
    (matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs git in `dir` through the module's own runner; panics on failure.
    async fn run(dir: &Path, args: &[&str]) -> String {
        let mut all = vec!["-c", "user.name=t", "-c", "user.email=t@example.com"];
        all.extend(args);
        let out = super::super::git(dir, &all, super::super::LOCAL_TIMEOUT)
            .await
            .unwrap();
        assert!(out.success(), "git {args:?}: {}", out.stderr);
        out.stdout.trim().to_string()
    }

    #[tokio::test]
    async fn head_is_read_as_git_reads_it_loose_packed_detached_and_in_a_linked_work_tree() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        if find_git_dir(dir.path()).is_none() {
            assert!(matches!(
                head_commit(&work),
                Err(Error::NotAWorkTree { .. })
            ));
        }
        run(&work, &["init", "--quiet", "--initial-branch=main"]).await;
        assert_eq!(head_commit(&work).unwrap(), None, "no commit yet");
        std::fs::write(work.join("a.yaml"), "a: 1\n").unwrap();
        run(&work, &["add", "a.yaml"]).await;
        run(&work, &["commit", "--quiet", "-m", "one"]).await;
        let first = run(&work, &["rev-parse", "HEAD"]).await;
        assert_eq!(head_commit(&work).unwrap().as_deref(), Some(first.as_str()));

        run(&work, &["pack-refs", "--all"]).await;
        assert!(!work.join(".git/refs/heads/main").exists(), "packed");
        assert_eq!(head_commit(&work).unwrap().as_deref(), Some(first.as_str()));

        run(&work, &["commit", "--quiet", "--allow-empty", "-m", "two"]).await;
        let second = run(&work, &["rev-parse", "HEAD"]).await;
        assert_ne!(first, second);
        assert_eq!(
            head_commit(&work).unwrap().as_deref(),
            Some(second.as_str())
        );

        run(&work, &["checkout", "--quiet", "--detach", &first]).await;
        assert_eq!(head_commit(&work).unwrap().as_deref(), Some(first.as_str()));
        run(&work, &["checkout", "--quiet", "main"]).await;

        let linked = dir.path().join("linked");
        let linked_arg = linked.to_str().unwrap();
        run(
            &work,
            &["worktree", "add", "--quiet", "-b", "other", linked_arg],
        )
        .await;
        run(
            &linked,
            &["commit", "--quiet", "--allow-empty", "-m", "three"],
        )
        .await;
        let third = run(&linked, &["rev-parse", "HEAD"]).await;
        assert_eq!(
            head_commit(&linked).unwrap().as_deref(),
            Some(third.as_str())
        );
        assert_eq!(
            head_commit(&work).unwrap().as_deref(),
            Some(second.as_str())
        );
    }

    #[test]
    fn a_head_that_is_neither_a_commit_nor_a_ref_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let git_dir = dir.path().join(".git");
        std::fs::create_dir(&git_dir).unwrap();
        for head in [
            "garbage\n",
            "ref: ../../etc/passwd\n",
            "ref: refs/heads/../x\n",
        ] {
            std::fs::write(git_dir.join("HEAD"), head).unwrap();
            assert!(
                matches!(head_commit(dir.path()), Err(Error::Unreadable { .. })),
                "{head:?}"
            );
        }
        std::fs::create_dir(git_dir.join("reftable")).unwrap();
        std::fs::write(git_dir.join("HEAD"), "ref: refs/heads/.invalid\n").unwrap();
        let error = head_commit(dir.path()).unwrap_err().to_string();
        assert!(error.contains("reftable"), "{error}");
    }
}
