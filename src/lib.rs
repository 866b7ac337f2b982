//! c2quay: a reconciling agent for Docker Compose hosts, gated by a Pact Broker.
//!
//! # Layout
//!
//! - [`manifest`]: the environment manifest format, its validation and loading a desired directory.
//! - [`plan`]: the pure planner: desired + applied + observed -> one action with a reason.
//! - [`pipeline`]: one reconcile of one environment: gate -> apply -> smoke -> record, and rollback.
//! - [`broker`]: the Pact Broker HAL client (can-i-deploy, environments, record-deployment).
//! - [`docker`]: the Docker port in two halves: `Engine` (the Engine API, with bollard: containers, logs, events) and `Applier` (the Compose CLI: config, pull, up, override files); one readiness loop.
//! - [`smoke`]: http / tcp / exec smoke checks.
//! - [`events`]: the pipeline's step names and events, and the `EventSink` port (metrics, audit, log).
//! - [`status`]: the one writer of `status.json` (under the environment lock) and the phase rules.
//! - [`state`]: the state directory: status, journal, outbox, snapshots, reports, locks, atomic writes.
//! - [`git`]: the desired directory as a git work tree: its revision, and the fast-forward-only sync.
//! - [`agent`]: the controller: watcher, work queue, backoff, recovery, shutdown, HTTP endpoints.
//! - [`metrics`]: the Prometheus registry and metric definitions.
//! - [`cli`]: clap types and the subcommands; `main.rs` only maps their outcome to an exit code.
//! - [`secret`]: the `Secret` type that never prints its value.

#![deny(missing_docs)]

pub mod agent;
pub mod broker;
pub mod cli;
pub mod docker;
mod errors;
pub mod events;
pub mod git;
pub mod manifest;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod secret;
pub mod smoke;
pub mod state;
pub mod status;

pub use errors::error_chain;
