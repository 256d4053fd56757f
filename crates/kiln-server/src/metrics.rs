//! Prometheus metrics (`GET /metrics`), through the `metrics` facade and its Prometheus
//! recorder. The driver records what it does (tick duration, store commit latency, dispatch
//! latency, journal events by type) and samples, at most once a second, what it holds (instances
//! by state, queue depth per compute environment, nodes by state); the API counts requests by
//! route and status. Nothing here blocks: recording is an atomic update.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const TICK_SECONDS: &str = "kiln_tick_duration_seconds";
pub const COMMIT_SECONDS: &str = "kiln_store_commit_seconds";
pub const DISPATCH_SECONDS: &str = "kiln_dispatch_latency_seconds";
pub const EVENTS_TOTAL: &str = "kiln_events_total";
pub const INSTANCES: &str = "kiln_instances";
pub const QUEUE_DEPTH: &str = "kiln_queue_depth";
pub const NODES: &str = "kiln_nodes";
pub const API_REQUESTS: &str = "kiln_api_requests_total";

/// How often the driver samples its gauges.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use (`None` if another recorder was installed).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        TICK_SECONDS,
        metrics::Unit::Seconds,
        "Scheduler tick duration."
    );
    describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Time to commit one tick's changes to the store."
    );
    describe_histogram!(
        DISPATCH_SECONDS,
        metrics::Unit::Seconds,
        "From an attempt's dispatch to its start being reported."
    );
    describe_counter!(EVENTS_TOTAL, "Journal events written, by type.");
    describe_gauge!(
        INSTANCES,
        "Instances of the jobs in the scheduler, by state."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Instances ready to run (RUNNABLE) per compute environment (`local`: the built-in executor)."
    );
    describe_gauge!(NODES, "Compute nodes by state.");
    describe_counter!(API_REQUESTS, "API requests answered, by route and status.");
}

/// The text exposition of every metric.
pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}
