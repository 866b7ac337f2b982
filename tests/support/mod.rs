//! Shared helpers for integration and end-to-end tests: `mod support;` in a
//! test crate, then `support::docker::...`.
#![allow(dead_code)]

pub mod docker;
