//! `c2quay doctor`: checks what c2quay needs on this host and says how to fix each failure.

use std::sync::Arc;

use super::Dirs;
use crate::broker::HttpBroker;
use crate::docker::{CliCompose, CliConfig, Engine};
use crate::manifest;
use crate::pipeline::{Brokers, HttpBrokers, error_chain};
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
}

struct Report {
    failures: usize,
}

impl Report {
    fn ok(&mut self, what: &str, detail: &str) {
        println!("ok    {what}: {detail}");
    }

    fn fail(&mut self, what: &str, detail: &str, fix: &str) {
        self.failures += 1;
        println!("FAIL  {what}: {detail}\n      fix: {fix}");
    }
}

/// Runs `doctor`.
pub async fn doctor(args: DoctorArgs) -> i32 {
    let mut report = Report { failures: 0 };
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
                        &format!("reachable, {} Compose containers", containers.len()),
                    );
                    check_address_pools(&mut report, compose.engine()).await;
                }
                Err(error) => report.fail(
                    "docker",
                    &error_chain(&error),
                    "start the Docker daemon and add the c2quay user to the docker group",
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
            for env in &loaded.environments {
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
    if report.failures == 0 {
        println!("all checks passed");
        0
    } else {
        println!("{} checks failed", report.failures);
        1
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
