//! The fast integration tests: no Docker engine needed (`cargo nextest run --test it`).
//!
//! One binary, the ripgrep / rust-analyzer way, so the library and the support code link once;
//! one module per topic (each was its own test binary before). The Docker end-to-end tests are
//! the other binary, `tests/e2e`.

#[path = "../support/mod.rs"]
mod support;

mod broker_client;
mod broker_fidelity;
mod closed_stdout;
mod config_fakes;
mod gate_waves;
mod gitops;
mod hostile_desired;
mod manifest_cli;
mod manifest_schema;
mod ops_files;
mod parser_fuzz;
mod pipeline_fakes;
mod rollback_fakes;
mod state_dir;
mod tidy;
