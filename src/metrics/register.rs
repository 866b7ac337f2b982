//! Creating metric vectors and registering them, naming the metric in any error.

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{Error, Result};

/// Creates an `IntCounterVec` and registers it.
pub(super) fn counter(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec> {
    let vec =
        IntCounterVec::new(Opts::new(name, help), labels).map_err(|source| Error::Register {
            metric: name,
            source,
        })?;
    register(registry, name, vec.clone())?;
    Ok(vec)
}

/// Creates an `IntGaugeVec` and registers it.
pub(super) fn gauge(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec> {
    let vec =
        IntGaugeVec::new(Opts::new(name, help), labels).map_err(|source| Error::Register {
            metric: name,
            source,
        })?;
    register(registry, name, vec.clone())?;
    Ok(vec)
}

/// Creates a `HistogramVec` with the given buckets and registers it.
pub(super) fn histogram(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let vec = HistogramVec::new(opts, labels).map_err(|source| Error::Register {
        metric: name,
        source,
    })?;
    register(registry, name, vec.clone())?;
    Ok(vec)
}

/// Registers a collector, naming the metric in the error.
pub(super) fn register(
    registry: &Registry,
    name: &'static str,
    collector: impl Collector + 'static,
) -> Result<()> {
    registry
        .register(Box::new(collector))
        .map_err(|source| Error::Register {
            metric: name,
            source,
        })
}
