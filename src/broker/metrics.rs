//! The broker's Prometheus metrics, served as text on the admin port.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::audit::{Dropped, Outcome};
use super::http::server::ConnectionCap;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The scope the call needed; empty when no route matched.
    pub scope: Arc<String>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    pub scope: Arc<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~26 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Every metric of one broker process; each is listed in docs/operations.md.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decision_seconds: HistogramFamily<ScopeLabels>,
    invocations: Family<OutcomeLabels, Counter>,
    invocation_seconds: Histogram,
    invocations_in_flight: Gauge,
    policy_reloads: Family<ReloadLabels, Counter>,
    credential_reloads: Family<ReloadLabels, Counter>,
    responses_cut_off: Counter,
    outbound_connections: Gauge,
    outbound_connection_cap_reached: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(&Dropped::default())
    }
}

impl Metrics {
    /// The metrics, with the audit log's counts of dropped lines among them.
    pub fn new(dropped: &Dropped) -> Self {
        let mut registry = Registry::with_prefix("broker");
        crate::telemetry::register_build_info(&mut registry, "broker");
        registry.register(
            "audit_lines_dropped",
            "Audit lines dropped because standard output did not take them and the buffer was full",
            dropped.audit.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because standard output did not take them and the buffer was full",
            dropped.log.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Outbound calls of the plugin, by the scope they needed and their outcome",
            decisions.clone(),
        );
        let decision_seconds: HistogramFamily<ScopeLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "decision_duration_seconds",
            "Time from receiving an outbound call to answering it (response head)",
            decision_seconds.clone(),
        );
        let invocations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "invocations",
            "Inbound invocations of the plugin, by outcome",
            invocations.clone(),
        );
        let invocation_seconds = latency_histogram();
        registry.register(
            "invocation_duration_seconds",
            "Time from receiving an invocation to answering it (response head)",
            invocation_seconds.clone(),
        );
        let invocations_in_flight = Gauge::default();
        registry.register(
            "invocations_in_flight",
            "Invocations of the plugin being handled now",
            invocations_in_flight.clone(),
        );
        let policy_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy files read, by result (applied or rejected)",
            policy_reloads.clone(),
        );
        let credential_reloads = Family::<ReloadLabels, Counter>::default();
        // Both results are exported from the start, at 0, so the first rejection is an
        // increase a rule can see (`increase()` misses a series born at 1).
        for applied in [true, false] {
            let _ = policy_reloads.get_or_create(&reload_labels(applied));
            let _ = credential_reloads.get_or_create(&reload_labels(applied));
        }
        registry.register(
            "credential_reloads",
            "Credential files read, by result (applied or rejected)",
            credential_reloads.clone(),
        );
        let responses_cut_off = Counter::default();
        registry.register(
            "responses_cut_off",
            "Chat-API responses whose body had not ended by the call's deadline (--upstream-timeout) and was cut off",
            responses_cut_off.clone(),
        );
        let outbound_connections = Gauge::default();
        registry.register(
            "outbound_connections",
            "Plugin connections to the outbound listener open now",
            outbound_connections.clone(),
        );
        let outbound_connection_cap_reached = Counter::default();
        registry.register(
            "outbound_connection_cap_reached",
            "Times the outbound listener had --max-outbound-connections open and stopped accepting until one closed",
            outbound_connection_cap_reached.clone(),
        );
        Self {
            registry,
            decisions,
            decision_seconds,
            invocations,
            invocation_seconds,
            invocations_in_flight,
            policy_reloads,
            credential_reloads,
            responses_cut_off,
            outbound_connections,
            outbound_connection_cap_reached,
        }
    }
}

impl Metrics {
    pub fn record_decision(&self, scope: &Arc<String>, outcome: Outcome, latency: Duration) {
        self.decisions
            .get_or_create(&DecisionLabels {
                scope: scope.clone(),
                outcome,
            })
            .inc();
        self.decision_seconds
            .get_or_create(&ScopeLabels {
                scope: scope.clone(),
            })
            .observe(latency.as_secs_f64());
    }

    pub fn record_invocation(&self, outcome: Outcome, latency: Duration) {
        self.invocations
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.invocation_seconds.observe(latency.as_secs_f64());
    }

    pub fn invocations_in_flight(&self) -> &Gauge {
        &self.invocations_in_flight
    }

    pub fn record_policy_reload(&self, applied: bool) {
        self.policy_reloads
            .get_or_create(&reload_labels(applied))
            .inc();
    }

    pub fn record_credential_reload(&self, applied: bool) {
        self.credential_reloads
            .get_or_create(&reload_labels(applied))
            .inc();
    }

    pub fn record_response_cut_off(&self) {
        self.responses_cut_off.inc();
    }

    /// A cap of `max` open connections, counted in the outbound connection metrics.
    pub fn outbound_connection_cap(&self, max: usize) -> ConnectionCap {
        ConnectionCap::new(
            max,
            self.outbound_connections.clone(),
            self.outbound_connection_cap_reached.clone(),
        )
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn reload_labels(applied: bool) -> ReloadLabels {
    ReloadLabels {
        result: if applied { "applied" } else { "rejected" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_per_scope_and_outcome() {
        let metrics = Metrics::default();
        let scope = Arc::new("messages:write".to_owned());
        metrics.record_decision(&scope, Outcome::Denied, Duration::from_micros(300));
        metrics.record_decision(&scope, Outcome::Denied, Duration::from_micros(300));
        let text = metrics.encode();
        assert!(
            text.contains(r#"broker_decisions_total{scope="messages:write",outcome="denied"} 2"#),
            "{text}"
        );
        assert!(text.contains("broker_decision_duration_seconds_bucket"));
    }

    #[test]
    fn reload_results_are_exported_at_zero_before_any_reload() {
        let text = Metrics::default().encode();
        for line in [
            r#"broker_policy_reloads_total{result="applied"} 0"#,
            r#"broker_policy_reloads_total{result="rejected"} 0"#,
            r#"broker_credential_reloads_total{result="rejected"} 0"#,
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn every_metric_is_in_the_operations_docs_table_with_its_type() {
        use crate::telemetry::documented::{in_docs, in_exposition};
        let metrics = Metrics::default();
        let scope = Arc::new("messages:read".to_owned());
        metrics.record_decision(&scope, Outcome::Allowed, Duration::from_micros(300));
        metrics.record_invocation(Outcome::Allowed, Duration::from_micros(300));
        // A family is exposed once it has a label set.
        let exported = in_exposition(&metrics.encode());
        assert_eq!(
            exported.len(),
            13,
            "a metric was added or removed: {exported:?}"
        );
        assert_eq!(in_docs("broker_"), exported);
    }

    #[test]
    fn build_info_names_the_version_and_commit() {
        let text = Metrics::default().encode();
        let line = format!(
            "broker_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            env!("PLUGIN_OPERATOR_COMMIT")
        );
        assert!(text.contains(&line), "{text}");
    }
}
