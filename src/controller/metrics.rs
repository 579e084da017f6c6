//! The operator's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub condition: String,
    pub status: String,
}

/// One Plugin, and why it is Degraded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DegradedLabels {
    pub namespace: String,
    pub plugin: String,
    pub reason: String,
}

/// Counters the reconcile loop updates; `plugins` is refreshed from the cache at scrape.
/// Every metric is listed in docs/operations.md.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Counter,
    pub errors: Family<ReasonLabels, Counter>,
    pub duration: Histogram,
    pub writes: Family<KindLabels, Counter>,
    pub drift_corrections: Family<KindLabels, Counter>,
    pub child_reads: Family<KindLabels, Counter>,
    pub plugins: Family<ConditionLabels, Gauge>,
    /// 1 for each Plugin whose Degraded condition is True; no series for the others.
    pub degraded: Family<DegradedLabels, Gauge>,
    /// 1 while this replica reconciles (it holds the Lease, or leader election is off),
    /// 0 while it stands by.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("plugin_operator");
        let reconciles = Counter::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let duration = Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        let writes = Family::<KindLabels, Counter>::default();
        let drift_corrections = Family::<KindLabels, Counter>::default();
        let child_reads = Family::<KindLabels, Counter>::default();
        let plugins = Family::<ConditionLabels, Gauge>::default();
        let leader = Gauge::default();
        let degraded = Family::<DegradedLabels, Gauge>::default();
        crate::telemetry::register_build_info(&mut registry, "operator");
        registry.register(
            "leader",
            "1 while this replica reconciles (it holds the Lease, or leader election is off), 0 while it stands by",
            leader.clone(),
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes the operator sent to the API server, by kind",
            writes.clone(),
        );
        registry.register(
            "drift_corrections",
            "Children put back after another writer changed or deleted them, by kind",
            drift_corrections.clone(),
        );
        registry.register(
            "child_reads",
            "Children read from the API server to compare them in full, by kind: one whose content digest the operator had not seen without drift",
            child_reads.clone(),
        );
        registry.register(
            "plugins",
            "Plugins by condition and status",
            plugins.clone(),
        );
        registry.register(
            "plugin_degraded",
            "1 for each Plugin whose Degraded condition is True, with its reason; no series for the others",
            degraded.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            drift_corrections,
            child_reads,
            plugins,
            degraded,
            leader,
        }
    }
}

impl Metrics {
    pub fn count_write(&self, kind: &str) {
        self.writes
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    pub fn count_drift_correction(&self, kind: &str) {
        self.drift_corrections
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    pub fn count_child_read(&self, kind: &str) {
        self.child_reads
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    pub fn count_error(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_names_the_version_and_commit_and_leader_starts_at_zero() {
        let metrics = Metrics::default();
        let text = metrics.encode();
        let build_info = format!(
            "plugin_operator_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            env!("PLUGIN_OPERATOR_COMMIT")
        );
        assert!(text.contains(&build_info), "{text}");
        assert!(
            text.contains("# TYPE plugin_operator_build_info gauge"),
            "{text}"
        );
        assert!(text.contains("plugin_operator_leader 0\n"), "{text}");
        metrics.leader.set(1);
        assert!(metrics.encode().contains("plugin_operator_leader 1\n"));
    }

    #[test]
    fn every_metric_is_in_the_operations_docs_table_with_its_type() {
        use crate::telemetry::documented::{in_docs, in_exposition};
        let metrics = Metrics::default();
        metrics.count_error("ApplyFailed");
        metrics.count_write("Deployment");
        metrics.count_drift_correction("Service");
        metrics.count_child_read("ConfigMap");
        // A family is exposed once it has a label set.
        metrics
            .plugins
            .get_or_create(&ConditionLabels {
                condition: "Ready".into(),
                status: "True".into(),
            })
            .set(1);
        metrics
            .degraded
            .get_or_create(&DegradedLabels {
                namespace: "team-a".into(),
                plugin: "weather".into(),
                reason: "CrashLoopBackOff".into(),
            })
            .set(1);
        let exported = in_exposition(&metrics.encode());
        assert_eq!(
            exported.len(),
            10,
            "a metric was added or removed: {exported:?}"
        );
        assert_eq!(in_docs("plugin_operator_"), exported);
    }

    #[test]
    fn counters_end_in_total_and_durations_in_seconds() {
        let metrics = Metrics::default();
        metrics.reconciles.inc();
        metrics.count_error("ApplyFailed");
        metrics.count_write("Deployment");
        metrics.count_drift_correction("Service");
        metrics.count_child_read("ConfigMap");
        metrics.duration.observe(0.1);
        let text = metrics.encode();
        for line in [
            "# TYPE plugin_operator_reconciles counter",
            "plugin_operator_reconciles_total 1",
            "plugin_operator_reconcile_errors_total{reason=\"ApplyFailed\"} 1",
            "plugin_operator_api_writes_total{kind=\"Deployment\"} 1",
            "plugin_operator_drift_corrections_total{kind=\"Service\"} 1",
            "plugin_operator_child_reads_total{kind=\"ConfigMap\"} 1",
            "plugin_operator_reconcile_duration_seconds_bucket{le=\"0.25\"} 1",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}
