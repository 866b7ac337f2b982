//! `c2quay validate DIR` and `c2quay schema`.

/// Arguments of `c2quay validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The desired directory.
    pub dir: std::path::PathBuf,
}

/// Runs `validate`.
pub fn run(_args: Args) -> i32 {
    0
}

/// Runs `schema`.
pub fn schema() -> i32 {
    0
}
