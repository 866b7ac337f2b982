//! Environment manifests: the types users commit, their validation, and loading a directory.
//!
//! Owns the file format (DESIGN.md §3). Does not know about Docker or the broker.

mod types;

pub use types::*;
