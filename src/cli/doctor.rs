//! `c2quay doctor`: checks what c2quay needs on this host and says how to fix each failure.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use serde::Serialize;

use super::{Dirs, Output};
use crate::broker::HttpBroker;
use crate::docker::{Applier, CliCompose, CliConfig, Engine};
use crate::manifest::{self, Environment, PullPolicy};
use crate::pipeline::{self, Brokers, HttpBrokers, error_chain};
use crate::state::StateDir;

/// Arguments of `c2quay doctor`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit 0 when every check passes, 1 otherwise; each failure says how to fix it."
)]
pub struct DoctorArgs {
    /// Directories.
    #[command(flatten)]
    pub dirs: Dirs,
    /// This host's name, matched against `spec.hosts`: only this host's environments are
    /// checked (default: the machine's host name).
    #[arg(long, env = "C2QUAY_HOST")]
    pub host: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// One check's result, as `-o json` prints it.
#[derive(Debug, Serialize)]
struct Finding {
    check: String,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

#[derive(Default)]
struct Report {
    findings: Vec<Finding>,
}

impl Report {
    fn ok(&mut self, what: &str, detail: &str) {
        self.findings.push(Finding {
            check: what.to_string(),
            ok: true,
            detail: detail.to_string(),
            fix: None,
        });
    }

    fn fail(&mut self, what: &str, detail: &str, fix: &str) {
        self.findings.push(Finding {
            check: what.to_string(),
            ok: false,
            detail: detail.to_string(),
            fix: Some(fix.to_string()),
        });
    }

    fn failures(&self) -> usize {
        self.findings.iter().filter(|f| !f.ok).count()
    }

    /// Prints every finding (text or JSON) and returns the exit code.
    fn print(&self, output: Output) -> i32 {
        let failures = self.failures();
        let data = serde_json::json!({
            "ok": failures == 0,
            "failures": failures,
            "checks": self.findings,
        });
        match super::common::print_data(&data, output) {
            true => {}
            false => {
                for f in &self.findings {
                    match &f.fix {
                        None => println!("ok    {}: {}", f.check, f.detail),
                        Some(fix) => {
                            println!("FAIL  {}: {}\n      fix: {fix}", f.check, f.detail)
                        }
                    }
                }
                if failures == 0 {
                    println!("all checks passed");
                } else {
                    println!("{failures} checks failed");
                }
            }
        }
        i32::from(failures > 0)
    }
}

/// Where Docker is: `DOCKER_HOST` when set (said in every Docker finding), else the default.
fn docker_socket() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => format!("DOCKER_HOST={host}"),
        _ => "/var/run/docker.sock (DOCKER_HOST is not set)".to_string(),
    }
}

/// Runs `doctor`.
pub async fn doctor(args: DoctorArgs) -> i32 {
    let mut report = Report::default();
    let mut docker = None;
    // State directory: exists or can be created, private, writable.
    match StateDir::open(&args.dirs.state_dir) {
        Ok(state) => {
            let probe = state.root().join(".doctor-probe");
            match crate::state::write_atomic(&probe, b"ok", 0o600) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&probe);
                    report.ok(
                        "state directory",
                        &format!("{} is private and writable", args.dirs.state_dir.display()),
                    );
                }
                Err(error) => report.fail(
                    "state directory",
                    &error_chain(&error),
                    "give the c2quay user write access (systemd: StateDirectory=c2quay)",
                ),
            }
        }
        Err(error) => {
            let dir = args.dirs.state_dir.display();
            let fix = match error.kind() {
                "permissions" => format!(
                    "chmod 700 {dir} (only the c2quay user may write state: it decides what runs)"
                ),
                _ => format!("create {dir} with mode 0700 owned by the c2quay user"),
            };
            report.fail("state directory", &error_chain(&error), &fix)
        }
    }
    // Compose v2 and Docker.
    let overrides = std::env::temp_dir().join("c2quay-doctor");
    match CliCompose::detect(CliConfig::new(overrides)).await {
        Ok(compose) => {
            report.ok("docker compose", &format!("v{}", compose.version()));
            // Asked twice: a container removed by someone else between `docker ps` and
            // `docker inspect` can fail one listing without anything being wrong.
            let mut listed = compose.ps_all().await;
            if listed.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                listed = compose.ps_all().await;
            }
            match listed {
                Ok(containers) => {
                    report.ok(
                        "docker",
                        &format!(
                            "reachable at {}, {} Compose containers",
                            docker_socket(),
                            containers.len()
                        ),
                    );
                    check_address_pools(&mut report, compose.engine()).await;
                    docker = Some(compose);
                }
                Err(error) => report.fail(
                    "docker",
                    &format!("{} ({})", error_chain(&error), docker_socket()),
                    "start the Docker daemon and add the c2quay user to the docker group (or fix DOCKER_HOST)",
                ),
            }
        }
        Err(error) => report.fail(
            "docker compose",
            &error_chain(&error),
            "install Docker and the Compose v2 plugin (/usr/local/lib/docker/cli-plugins/docker-compose); Compose v1 is not supported",
        ),
    }
    // Desired directory and brokers.
    match manifest::load_dir(&args.dirs.desired) {
        Ok(loaded) => {
            let errors = loaded.problems.iter().filter(|p| p.is_error()).count();
            if errors == 0 {
                report.ok(
                    "desired directory",
                    &format!("{} environments, all valid", loaded.environments.len()),
                );
            } else {
                report.fail(
                    "desired directory",
                    &format!("{errors} problems"),
                    &format!("run c2quay validate {}", args.dirs.desired.display()),
                );
            }
            let brokers = HttpBrokers::new(None);
            let host = args.host.clone().unwrap_or_else(crate::agent::hostname);
            let (mine, others): (Vec<&Environment>, Vec<&Environment>) = loaded
                .environments
                .iter()
                .partition(|env| env.owned_by(&host));
            if !others.is_empty() {
                let names: Vec<&str> = others.iter().map(|env| env.name()).collect();
                let detail = format!(
                    "not checked, their spec.hosts do not name {host}: {}",
                    names.join(", ")
                );
                report.ok("other hosts' environments", &detail);
            }
            for env in mine {
                check_deployable(&mut report, env, docker.as_ref()).await;
                check_secret_files(&mut report, env);
                let Some(spec) = &env.manifest.spec.broker else {
                    continue;
                };
                let what = format!("broker of {}", env.name());
                match brokers.client(spec) {
                    Ok(client) => check_broker(&mut report, &what, client, &spec.environment).await,
                    Err(error) => report.fail(
                        &what,
                        &error_chain(&error),
                        "check the tokenFile/passwordFile paths and their permissions",
                    ),
                }
            }
        }
        Err(error) => report.fail(
            "desired directory",
            &error_chain(&error),
            "check --desired and that the c2quay user can read it",
        ),
    }
    report.print(args.output)
}

/// Whether this host can deploy `env`: its Compose directory and files are readable, the
/// project renders with `docker compose config`, and with `pull: never` its pinned images are
/// on the host.
async fn check_deployable(report: &mut Report, env: &Environment, docker: Option<&CliCompose>) {
    let what = format!("compose files of {}", env.name());
    let directory = std::fs::read_dir(&env.compose_directory).err();
    let paths: Vec<&std::path::PathBuf> = match directory {
        Some(_) => vec![&env.compose_directory],
        None => env.compose_files.iter().collect(),
    };
    let unreadable: Vec<String> = paths
        .into_iter()
        .filter_map(|path| {
            let read = match path.is_dir() {
                true => std::fs::read_dir(path).map(|_| ()),
                false => std::fs::File::open(path).map(|_| ()),
            };
            read.err().map(|e| format!("{}: {e}", path.display()))
        })
        .collect();
    if !unreadable.is_empty() {
        let fix = "check spec.compose.directory/files and that the c2quay user can read them";
        report.fail(&what, &unreadable.join("; "), fix);
        return;
    }
    let Some(compose) = docker else {
        return;
    };
    let project = pipeline::project_of(env);
    match compose.config(&project).await {
        Ok(model) => {
            let detail = format!(
                "{} file(s) render ({} services)",
                project.files.len(),
                model.len()
            );
            report.ok(&what, &detail);
        }
        Err(error) => {
            let fix = format!(
                "run docker compose -p {} --project-directory {} config to see the problem",
                project.name,
                project.directory.display()
            );
            report.fail(&what, &error_chain(&error), &fix);
            return;
        }
    }
    if env.manifest.spec.compose.pull != PullPolicy::Never {
        return;
    }
    let what = format!("images of {}", env.name());
    let mut missing = Vec::new();
    let pinned = env.pinned_services();
    for image in pinned.iter().filter_map(|s| env.pinned_image(s)) {
        match compose.engine().image_id(&image).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(image),
            Err(error) => missing.push(format!("{image} ({})", error_chain(&error))),
        }
    }
    if missing.is_empty() {
        report.ok(
            &what,
            &format!("{} pinned images present (pull: never)", pinned.len()),
        );
    } else {
        let detail = format!("not on this host: {}", missing.join(", "));
        report.fail(
            &what,
            &detail,
            "load or build them here, or set spec.compose.pull",
        );
    }
}

/// The broker's secret files of `env` are readable and not readable by everyone.
fn check_secret_files(report: &mut Report, env: &Environment) {
    let Some(spec) = &env.manifest.spec.broker else {
        return;
    };
    for (field, path) in [
        ("spec.broker.tokenFile", &spec.token_file),
        ("spec.broker.passwordFile", &spec.password_file),
    ] {
        let Some(path) = path else { continue };
        let what = format!("{field} of {}", env.name());
        match std::fs::metadata(path).and_then(|m| std::fs::File::open(path).map(|_| m)) {
            Ok(meta) if meta.permissions().mode() & 0o004 != 0 => report.fail(
                &what,
                &format!(
                    "{} is readable by every user (mode {:o})",
                    path.display(),
                    meta.permissions().mode() & 0o777
                ),
                &format!("chmod 600 {} (owned by the c2quay user)", path.display()),
            ),
            Ok(_) => report.ok(
                &what,
                &format!("{} is readable and private", path.display()),
            ),
            Err(error) => report.fail(
                &what,
                &format!("{}: {error}", path.display()),
                "create the file or give the c2quay user read access",
            ),
        }
    }
}

/// Fewer free networks than this in the daemon's address pools is a warning: each Compose
/// project needs one, and the next first deploy fails at `up` without it.
const FEW_FREE_NETWORKS: u64 = 5;

/// Room for more project networks in the daemon's address pools (`daemon.json`'s
/// `default-address-pools`, else Docker's defaults).
async fn check_address_pools(report: &mut Report, engine: &crate::docker::DockerEngine) {
    use crate::docker::pools;
    let daemon_json = std::path::Path::new("/etc/docker/daemon.json");
    let configured = match std::fs::read_to_string(daemon_json) {
        Ok(text) => match pools::pools_of_daemon_json(&text) {
            Ok(configured) => configured,
            Err(error) => {
                let detail = format!("{}: {error}", daemon_json.display());
                report.fail(
                    "address pools",
                    &detail,
                    "fix default-address-pools in daemon.json",
                );
                return;
            }
        },
        Err(_) => None,
    };
    let source = match configured {
        Some(_) => "default-address-pools in /etc/docker/daemon.json",
        None => "Docker's default pools",
    };
    let pools = configured.unwrap_or_else(|| pools::DEFAULT_POOLS.to_vec());
    match engine.network_subnets().await {
        Ok(subnets) => {
            let room = pools::pool_room(&pools, &subnets);
            let detail = format!(
                "{} of {} networks free ({source}); each Compose project needs one",
                room.free(),
                room.capacity
            );
            if room.free() < FEW_FREE_NETWORKS {
                report.fail(
                    "address pools",
                    &detail,
                    "remove unused networks (docker network prune) or widen default-address-pools in /etc/docker/daemon.json, e.g. [{\"base\": \"10.200.0.0/16\", \"size\": 24}] (256 networks), then restart dockerd",
                );
            } else {
                report.ok("address pools", &detail);
            }
        }
        Err(error) => report.fail(
            "address pools",
            &error_chain(&error),
            "start the Docker daemon and add the c2quay user to the docker group",
        ),
    }
}

/// The broker checks of one environment, answered by the broker client
/// ([`HttpBroker::diagnose`]): the index and its relations, the origins of its links, the
/// environment and its resource.
async fn check_broker(report: &mut Report, what: &str, client: Arc<HttpBroker>, environment: &str) {
    for finding in client.diagnose(environment).await {
        match &finding.fix {
            None => report.ok(what, &finding.detail),
            Some(fix) => report.fail(what, &finding.detail, fix),
        }
    }
}
