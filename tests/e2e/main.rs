//! The end-to-end tests: the real `c2quay` binary against a real Docker engine, Compose v2, the
//! broker emulator (and Prometheus), `cargo nextest run --test e2e`. They fail (not skip) when
//! `CI` or `C2QUAY_REQUIRE_DOCKER` is set and Docker is missing (`support::docker`).
//!
//! One binary, so the library and the support code link once; one module per topic (each was
//! its own test binary before). The daemon-restart test is `#[ignore]`d: `scripts/test.sh` runs
//! it alone with `--run-ignored only -E 'test(docker_faults::)'`.

#[path = "../support/mod.rs"]
mod support;

mod agent_e2e;
mod agent_e2e_crash;
mod agent_e2e_ops;
mod agent_e2e_scale;
mod broker_chaos;
mod claims_e2e;
mod cli_e2e;
mod compose_e2e;
mod config_e2e;
mod docker_faults;
mod docker_world;
mod doctor_cli;
mod endpoints;
mod foreign_owner_e2e;
mod gate_waves_e2e;
mod gitops_e2e;
mod host_faults;
mod hosts_e2e;
mod identity_e2e;
mod interrupt_e2e;
mod kill_loop;
mod orphan_records_e2e;
mod pipeline_e2e;
mod pipeline_e2e_apply;
mod pipeline_e2e_lock;
mod prometheus_e2e;
mod prune_e2e;
mod rollback_cli_e2e;
mod sandbox_e2e;
mod secrets_sweep;
mod serving_e2e;
mod state_faults;
mod state_schema_e2e;
mod sync_e2e;
mod trigger_e2e;
mod watchdog_e2e;
