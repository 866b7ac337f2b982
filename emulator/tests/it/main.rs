//! The emulator's tests in one binary: the HTTP API, fault injection, the matrix decision
//! table and the runs of the official `pact broker` CLI against it (`common`), one module per
//! topic.

mod common;
mod faults;
mod http_api;
mod matrix_decisions;
mod matrix_limit;
mod pact_cli;
mod pact_cli_deploy;
