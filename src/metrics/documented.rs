//! The list of every metric c2quay exports, which `docs/metrics.md`, the dashboard and the alert
//! rules are checked against.

/// Every metric exposed on `/metrics`: (full name as scraped, Prometheus type).
///
/// Histograms are listed by their base name; Prometheus also stores `_bucket`, `_sum` and
/// `_count` series for them. The `process_*` metrics are exposed on Linux only.
pub const DOCUMENTED_METRICS: &[(&str, &str)] = &[
    ("c2quay_reconcile_total", "counter"),
    ("c2quay_reconcile_duration_seconds", "histogram"),
    ("c2quay_step_duration_seconds", "histogram"),
    ("c2quay_environment_phase", "gauge"),
    ("c2quay_environment_ready", "gauge"),
    ("c2quay_gate_checks_total", "counter"),
    ("c2quay_gate_blocked", "gauge"),
    ("c2quay_gate_blocked_since_timestamp_seconds", "gauge"),
    ("c2quay_rollbacks_total", "counter"),
    ("c2quay_recoveries_total", "counter"),
    ("c2quay_drift_detected", "gauge"),
    ("c2quay_heals_total", "counter"),
    ("c2quay_pending_records", "gauge"),
    ("c2quay_records_total", "counter"),
    ("c2quay_broker_requests_total", "counter"),
    ("c2quay_broker_request_duration_seconds", "histogram"),
    ("c2quay_last_success_timestamp_seconds", "gauge"),
    ("c2quay_manifest_errors", "gauge"),
    ("c2quay_build_info", "gauge"),
    ("c2quay_docker_up", "gauge"),
    ("c2quay_state_error", "gauge"),
    ("c2quay_host_blocked", "gauge"),
    ("c2quay_docker_list_duration_seconds", "gauge"),
    ("c2quay_git_sync_total", "counter"),
    ("c2quay_git_sync_last_success_timestamp_seconds", "gauge"),
    ("c2quay_desired_revision_timestamp_seconds", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_threads", "gauge"),
];
