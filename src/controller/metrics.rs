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

/// Counters the reconcile loop updates; `plugins` is refreshed from the cache at scrape.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Counter,
    pub errors: Family<ReasonLabels, Counter>,
    pub duration: Histogram,
    pub writes: Family<KindLabels, Counter>,
    pub drift_corrections: Family<KindLabels, Counter>,
    pub plugins: Family<ConditionLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("plugin_operator");
        let reconciles = Counter::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let duration = Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        let writes = Family::<KindLabels, Counter>::default();
        let drift_corrections = Family::<KindLabels, Counter>::default();
        let plugins = Family::<ConditionLabels, Gauge>::default();
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
            "plugins",
            "Plugins by condition and status",
            plugins.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            drift_corrections,
            plugins,
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
