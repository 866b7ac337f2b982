//! The Prometheus registry and the metric definitions of c2quay.
