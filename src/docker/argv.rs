//! Pure argv builders for `docker` and `docker compose`: no IO, unit-tested with exact vectors.
//!
//! Every Compose command carries `-p NAME --project-directory DIR -f FILE...` explicitly (and the
//! c2quay override file last when pinning), so nothing depends on the current directory or on
//! `COMPOSE_*` variables of the agent's environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{Project, UpOptions};
use crate::manifest::PullPolicy;

/// Labels Compose puts on the containers it manages.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The service label.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The label Compose sets to the hash of the configuration a container was created from.
pub const CONFIG_HASH_LABEL: &str = "com.docker.compose.config-hash";

/// Set to `True` on containers of `docker compose run`: they are not the service's containers.
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// How Compose is invoked: `docker compose ...` (plugin) or `docker-compose ...` (standalone v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program to run (`docker` or `docker-compose`).
    pub program: PathBuf,
    /// Arguments before the Compose arguments (`["compose"]` for the plugin, empty otherwise).
    pub prefix: Vec<OsString>,
}

impl Invocation {
    /// The plugin form, `docker compose`.
    pub fn plugin(docker: impl Into<PathBuf>) -> Invocation {
        Invocation {
            program: docker.into(),
            prefix: vec!["compose".into()],
        }
    }

    /// The standalone form, `docker-compose`.
    pub fn standalone(program: impl Into<PathBuf>) -> Invocation {
        Invocation {
            program: program.into(),
            prefix: Vec::new(),
        }
    }

    /// The full argument list (without the program) for Compose arguments `args`.
    pub fn args(&self, args: Vec<OsString>) -> Vec<OsString> {
        let mut out = self.prefix.clone();
        out.extend(args);
        out
    }
}

/// `-p NAME --project-directory DIR -f FILE... [-f OVERRIDE]`.
pub fn global(project: &Project, override_file: Option<&Path>) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![
        "-p".into(),
        project.name.clone().into(),
        "--project-directory".into(),
        project.directory.clone().into(),
    ];
    for f in project
        .files
        .iter()
        .map(PathBuf::as_path)
        .chain(override_file)
    {
        out.push("-f".into());
        out.push(f.into());
    }
    out
}

fn with(mut base: Vec<OsString>, rest: &[&str]) -> Vec<OsString> {
    base.extend(rest.iter().map(OsString::from));
    base
}

/// `config --format json` (the rendered model, without the override).
pub fn config(project: &Project) -> Vec<OsString> {
    with(global(project, None), &["config", "--format", "json"])
}

/// `pull [--policy P] SERVICES` with the override, or `None` when the policy is `never`
/// or there is nothing to pull. Without `--policy` support (Compose < 2.22) it pulls always.
pub fn pull(
    project: &Project,
    override_file: Option<&Path>,
    services: &[String],
    policy: PullPolicy,
    supports_policy: bool,
) -> Option<Vec<OsString>> {
    if policy == PullPolicy::Never || services.is_empty() {
        return None;
    }
    let mut out = with(global(project, override_file), &["pull"]);
    if supports_policy {
        let p = if policy == PullPolicy::Always {
            "always"
        } else {
            "missing"
        };
        out.extend(["--policy".into(), p.into()]);
    }
    out.extend(services.iter().map(OsString::from));
    Some(out)
}

/// `up -d --pull never [--force-recreate] [--remove-orphans] [--no-deps] SERVICES` with the
/// override.
/// Pulling is its own step before `up`, so `up` never reaches a registry.
pub fn up(
    project: &Project,
    override_file: Option<&Path>,
    services: &[String],
    options: &UpOptions,
) -> Vec<OsString> {
    let mut out = with(
        global(project, override_file),
        &["up", "-d", "--pull", "never"],
    );
    if options.force_recreate {
        out.push("--force-recreate".into());
    }
    if options.remove_orphans {
        out.push("--remove-orphans".into());
    }
    if options.no_deps {
        out.push("--no-deps".into());
    }
    out.extend(services.iter().map(OsString::from));
    out
}

/// `logs --no-color --tail N SERVICE`.
pub fn logs(project: &Project, service: &str, tail: usize) -> Vec<OsString> {
    let mut out = with(global(project, None), &["logs", "--no-color", "--tail"]);
    out.push(tail.to_string().into());
    out.push(service.into());
    out
}

/// `down -v --remove-orphans` (tests and operators; the agent never runs it).
pub fn down(project: &Project) -> Vec<OsString> {
    with(global(project, None), &["down", "-v", "--remove-orphans"])
}

/// `-p NAME down --remove-orphans`: a project by name alone (its files may be gone), volumes
/// kept (`policy.prune: onRemove`).
pub fn take_down(project_name: &str) -> Vec<OsString> {
    ["-p", project_name, "down", "--remove-orphans"]
        .iter()
        .map(OsString::from)
        .collect()
}

/// `version --short` (Compose arguments; prefix with the invocation).
pub fn version() -> Vec<OsString> {
    vec!["version".into(), "--short".into()]
}

/// `docker tag SOURCE TARGET`.
pub fn docker_tag(source: &str, target: &str) -> Vec<OsString> {
    vec!["tag".into(), source.into(), target.into()]
}

/// Joins argv for messages; arguments with spaces or quotes are single-quoted.
pub fn display(program: &Path, args: &[OsString]) -> String {
    let mut out = program.to_string_lossy().into_owned();
    for a in args {
        let a = a.to_string_lossy();
        out.push(' ');
        if a.is_empty() || a.contains([' ', '"', '\'', '{', '\t']) {
            out.push('\'');
            out.push_str(&a.replace('\'', r"'\''"));
            out.push('\'');
        } else {
            out.push_str(&a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        Project {
            name: "shop".into(),
            directory: "/srv/shop".into(),
            files: vec![
                "/srv/shop/compose.yaml".into(),
                "/srv/shop/extra.yaml".into(),
            ],
        }
    }

    fn s(v: Vec<OsString>) -> Vec<String> {
        v.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn take_down_names_the_project_alone_and_keeps_volumes() {
        assert_eq!(
            s(take_down("shop")),
            ["-p", "shop", "down", "--remove-orphans"]
        );
    }

    const G: [&str; 8] = [
        "-p",
        "shop",
        "--project-directory",
        "/srv/shop",
        "-f",
        "/srv/shop/compose.yaml",
        "-f",
        "/srv/shop/extra.yaml",
    ];

    fn expect(tail: &[&str], with_override: bool) -> Vec<String> {
        let mut v: Vec<String> = G.iter().map(|a| a.to_string()).collect();
        if with_override {
            v.extend([
                "-f".to_string(),
                "/state/shop.c2quay-override.yaml".to_string(),
            ]);
        }
        v.extend(tail.iter().map(|a| a.to_string()));
        v
    }

    const OVR: &str = "/state/shop.c2quay-override.yaml";

    #[test]
    fn config() {
        assert_eq!(
            s(super::config(&project())),
            expect(&["config", "--format", "json"], false)
        );
    }

    #[test]
    fn pull_respects_policy_and_version() {
        let svc = vec!["web".to_string(), "worker".to_string()];
        let p = project();
        let o = Some(Path::new(OVR));
        assert_eq!(
            s(pull(&p, o, &svc, PullPolicy::Missing, true).unwrap()),
            expect(&["pull", "--policy", "missing", "web", "worker"], true)
        );
        assert_eq!(
            s(pull(&p, o, &svc, PullPolicy::Always, true).unwrap()),
            expect(&["pull", "--policy", "always", "web", "worker"], true)
        );
        assert_eq!(
            s(pull(&p, o, &svc, PullPolicy::Missing, false).unwrap()),
            expect(&["pull", "web", "worker"], true)
        );
        assert_eq!(pull(&p, o, &svc, PullPolicy::Never, true), None);
        assert_eq!(pull(&p, o, &[], PullPolicy::Always, true), None);
    }

    #[test]
    fn up_flags() {
        let svc = vec!["web".to_string()];
        let o = Some(Path::new(OVR));
        assert_eq!(
            s(up(&project(), o, &svc, &UpOptions::default())),
            expect(&["up", "-d", "--pull", "never", "web"], true)
        );
        let all = UpOptions {
            force_recreate: true,
            remove_orphans: true,
            no_deps: true,
        };
        assert_eq!(
            s(up(&project(), o, &svc, &all)),
            expect(
                &[
                    "up",
                    "-d",
                    "--pull",
                    "never",
                    "--force-recreate",
                    "--remove-orphans",
                    "--no-deps",
                    "web"
                ],
                true
            )
        );
    }

    #[test]
    fn logs_down_version_and_invocation() {
        assert_eq!(
            s(logs(&project(), "web", 20)),
            expect(&["logs", "--no-color", "--tail", "20", "web"], false)
        );
        assert_eq!(
            s(down(&project())),
            expect(&["down", "-v", "--remove-orphans"], false)
        );
        assert_eq!(
            s(Invocation::plugin("docker").args(version())),
            ["compose", "version", "--short"]
        );
        assert_eq!(
            s(Invocation::standalone("docker-compose").args(version())),
            ["version", "--short"]
        );
    }

    #[test]
    fn docker_commands() {
        assert_eq!(
            s(docker_tag("sha256:ab", "x/y:ab")),
            ["tag", "sha256:ab", "x/y:ab"]
        );
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let args: Vec<OsString> = vec![
            "ps".into(),
            "--format".into(),
            "{{json .}}".into(),
            "it's".into(),
        ];
        assert_eq!(
            display(Path::new("docker"), &args),
            r#"docker ps --format '{{json .}}' 'it'\''s'"#
        );
    }
}
