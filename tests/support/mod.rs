//! Shared helpers for the test binaries `tests/it` and `tests/e2e`: each declares
//! `#[path = "../support/mod.rs"] mod support;` once, and its modules `use crate::support::...`.
#![allow(dead_code)]

pub mod agent;
pub mod c2quay;
pub mod docker;
pub mod git;
pub mod pact;
pub mod prom;
pub mod registry;
