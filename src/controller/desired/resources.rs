//! Requests and limits of the plugin container, with defaults that never put a request
//! above its limit. Quantities are compared as the API server compares them.
//!
//! Ephemeral storage: the kubelet evicts a pod whose container writes more than its
//! container's `ephemeral-storage` limit (its writable layer and its logs; the root is
//! read-only here, so that is its logs), or whose containers and emptyDir volumes
//! together hold more than the sum of its containers' limits. /scratch is an emptyDir
//! with a `sizeLimit` of its own, so its size is added to the plugin container's limit:
//! otherwise a full /scratch would trip the pod's sum first, under a less telling message.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

use crate::api::quantity::{self, Amount};
use crate::api::{PluginSpec, ResourceAmounts};
use crate::controller::validate::InvalidSpec;

pub const DEFAULT_CPU_REQUEST: &str = "50m";
pub const DEFAULT_MEMORY_REQUEST: &str = "64Mi";
pub const DEFAULT_CPU_LIMIT: &str = "500m";
pub const DEFAULT_MEMORY_LIMIT: &str = "128Mi";
pub const DEFAULT_EPHEMERAL_STORAGE_REQUEST: &str = "16Mi";
/// Room for the container's logs: the kubelet keeps up to five files of 10 MiB each by
/// default, and rotates them every 10 s.
pub const DEFAULT_EPHEMERAL_STORAGE_LIMIT: &str = "128Mi";

/// The plugin container's amounts after defaults, as written in the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginResourceAmounts {
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
    pub ephemeral_storage_request: String,
    /// The container's own limit (its logs), as written or defaulted.
    pub ephemeral_storage_limit: String,
    /// What the container's limit is written as: the one above plus /scratch's sizeLimit.
    pub ephemeral_storage_limit_with_scratch: String,
}

/// Defaults fill what the spec leaves out: a missing request is the default capped at
/// the limit, a missing limit is the default raised to the request. Fails on a
/// quantity the API server would not read.
pub fn plugin_resources(spec: &PluginSpec) -> Result<PluginResourceAmounts, InvalidSpec> {
    let resources = spec.resources.clone().unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let (cpu_request, cpu_limit) = pair(
        amount(&requests, "resources.requests.cpu", |a| &a.cpu)?,
        amount(&limits, "resources.limits.cpu", |a| &a.cpu)?,
        DEFAULT_CPU_REQUEST,
        DEFAULT_CPU_LIMIT,
    );
    let (memory_request, memory_limit) = pair(
        amount(&requests, "resources.requests.memory", |a| &a.memory)?,
        amount(&limits, "resources.limits.memory", |a| &a.memory)?,
        DEFAULT_MEMORY_REQUEST,
        DEFAULT_MEMORY_LIMIT,
    );
    let (ephemeral_storage_request, ephemeral_storage_limit) = pair(
        amount(&requests, "resources.requests.ephemeralStorage", |a| {
            &a.ephemeral_storage
        })?,
        amount(&limits, "resources.limits.ephemeralStorage", |a| {
            &a.ephemeral_storage
        })?,
        DEFAULT_EPHEMERAL_STORAGE_REQUEST,
        DEFAULT_EPHEMERAL_STORAGE_LIMIT,
    );
    let ephemeral_storage_limit_with_scratch = match scratch_size(spec) {
        None => ephemeral_storage_limit.clone(),
        Some(scratch) => {
            let scratch = read_quantity("permissions.filesystem.scratch.sizeLimit", &scratch.0)?;
            let own = read_quantity(
                "resources.limits.ephemeralStorage",
                &ephemeral_storage_limit,
            )?;
            bytes_sum(&own, &scratch).ok_or(InvalidSpec::TooLarge(
                "resources.limits.ephemeralStorage plus permissions.filesystem.scratch.sizeLimit",
            ))?
        }
    };
    Ok(PluginResourceAmounts {
        cpu_request,
        cpu_limit,
        memory_request,
        memory_limit,
        ephemeral_storage_request,
        ephemeral_storage_limit,
        ephemeral_storage_limit_with_scratch,
    })
}

/// The size of /scratch, when the plugin has one.
pub fn scratch_size(spec: &PluginSpec) -> Option<&Quantity> {
    let filesystem = spec.permissions.as_ref()?.filesystem.as_ref()?;
    Some(&filesystem.scratch.as_ref()?.size_limit)
}

/// Two byte amounts added, as a quantity: in `Mi` when it is a whole number of them.
fn bytes_sum(a: &Amount, b: &Amount) -> Option<String> {
    const MI: u128 = 1 << 20;
    let sum = a
        .whole_units_rounded_up()?
        .checked_add(b.whole_units_rounded_up()?)?;
    Some(if sum % MI == 0 {
        format!("{}Mi", sum / MI)
    } else {
        sum.to_string()
    })
}

/// A quantity of the spec, read; `field` names it in the error.
pub fn read_quantity(field: &'static str, value: &str) -> Result<Amount, InvalidSpec> {
    quantity::parse(value).map_err(|source| InvalidSpec::Quantity {
        field,
        value: value.to_string(),
        source,
    })
}

/// A request or limit as written, with the amount the API server will store for it.
fn amount(
    amounts: &ResourceAmounts,
    field: &'static str,
    get: fn(&ResourceAmounts) -> &Option<Quantity>,
) -> Result<Option<(String, Amount)>, InvalidSpec> {
    get(amounts)
        .as_ref()
        .map(|q| {
            let stored = read_quantity(field, &q.0)?.as_stored_in_a_resource_list();
            Ok((q.0.clone(), stored))
        })
        .transpose()
}

fn pair(
    request: Option<(String, Amount)>,
    limit: Option<(String, Amount)>,
    default_request: &str,
    default_limit: &str,
) -> (String, String) {
    let default = |text: &str| {
        let amount = quantity::parse(text).expect("the defaults are quantities");
        (text.to_string(), amount.as_stored_in_a_resource_list())
    };
    match (request, limit) {
        (Some(request), Some(limit)) => (request.0, limit.0),
        (Some(request), None) => {
            let limit = std::cmp::max_by(default(default_limit), request.clone(), |a, b| {
                a.1.cmp(&b.1)
            });
            (request.0, limit.0)
        }
        (None, Some(limit)) => {
            let request = std::cmp::min_by(limit.clone(), default(default_request), |a, b| {
                a.1.cmp(&b.1)
            });
            (request.0, limit.0)
        }
        (None, None) => (default_request.to_string(), default_limit.to_string()),
    }
}

impl PluginResourceAmounts {
    pub fn requirements(&self) -> ResourceRequirements {
        ResourceRequirements {
            requests: Some(amounts([
                &self.cpu_request,
                &self.memory_request,
                &self.ephemeral_storage_request,
            ])),
            limits: Some(amounts([
                &self.cpu_limit,
                &self.memory_limit,
                &self.ephemeral_storage_limit_with_scratch,
            ])),
            ..ResourceRequirements::default()
        }
    }
}

/// A cpu, memory and ephemeral-storage map as a container's requests or limits.
pub fn amounts([cpu, memory, ephemeral_storage]: [&str; 3]) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.to_string())),
        ("memory".to_string(), Quantity(memory.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity(ephemeral_storage.to_string()),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::desired::fixtures::{MINIMAL, plugin};

    fn with_resources(yaml: &str) -> PluginResourceAmounts {
        plugin_resources(&plugin(&format!("{MINIMAL}resources:\n{yaml}")).spec).unwrap()
    }

    /// cpu request, cpu limit, memory request, memory limit.
    fn four(yaml: &str) -> [String; 4] {
        let a = with_resources(yaml);
        [a.cpu_request, a.cpu_limit, a.memory_request, a.memory_limit]
    }

    #[test]
    fn plugin_without_resources_gets_the_documented_defaults() {
        let amounts = plugin_resources(&plugin(MINIMAL).spec).unwrap();
        assert_eq!(amounts.cpu_request, "50m");
        assert_eq!(amounts.cpu_limit, "500m");
        assert_eq!(amounts.memory_request, "64Mi");
        assert_eq!(amounts.memory_limit, "128Mi");
        assert_eq!(amounts.ephemeral_storage_request, "16Mi");
        assert_eq!(amounts.ephemeral_storage_limit, "128Mi");
        assert_eq!(amounts.ephemeral_storage_limit_with_scratch, "128Mi");
    }

    #[test]
    fn scratch_size_is_added_to_the_ephemeral_storage_limit() {
        let scratch = "permissions:\n  filesystem: {scratch: {sizeLimit: 64Mi}}\n";
        let amounts = plugin_resources(&plugin(&format!("{MINIMAL}{scratch}")).spec).unwrap();
        assert_eq!(amounts.ephemeral_storage_limit, "128Mi");
        assert_eq!(amounts.ephemeral_storage_limit_with_scratch, "192Mi");
        assert_eq!(amounts.ephemeral_storage_request, "16Mi");

        let odd = format!(
            "{MINIMAL}resources:\n  limits: {{ephemeralStorage: 1G}}\npermissions:\n  filesystem: {{scratch: {{sizeLimit: 1.5Ki}}}}\n"
        );
        let amounts = plugin_resources(&plugin(&odd).spec).unwrap();
        assert_eq!(amounts.ephemeral_storage_limit, "1G");
        assert_eq!(amounts.ephemeral_storage_limit_with_scratch, "1000001536");
    }

    #[test]
    fn declared_ephemeral_storage_is_kept_and_a_small_limit_caps_the_default_request() {
        let amounts = with_resources("  limits: {ephemeralStorage: 8Mi}\n");
        assert_eq!(amounts.ephemeral_storage_request, "8Mi");
        assert_eq!(amounts.ephemeral_storage_limit, "8Mi");
        let amounts = with_resources("  requests: {ephemeralStorage: 1Gi}\n");
        assert_eq!(amounts.ephemeral_storage_limit, "1Gi");
    }

    #[test]
    fn small_limit_without_request_caps_the_default_request() {
        assert_eq!(
            four("  limits: {cpu: 20m, memory: 32Mi}\n"),
            ["20m", "20m", "32Mi", "32Mi"]
        );
    }

    #[test]
    fn large_request_without_limit_raises_the_default_limit() {
        assert_eq!(
            four("  requests: {cpu: 2, memory: 1Gi}\n"),
            ["2", "2", "1Gi", "1Gi"]
        );
    }

    #[test]
    fn declared_requests_and_limits_are_kept_as_written() {
        let amounts = with_resources(
            "  requests: {cpu: 100m, memory: 96Mi}\n  limits: {cpu: 1, memory: 256Mi}\n",
        );
        assert_eq!(
            amounts,
            PluginResourceAmounts {
                cpu_request: "100m".into(),
                cpu_limit: "1".into(),
                memory_request: "96Mi".into(),
                memory_limit: "256Mi".into(),
                ephemeral_storage_request: "16Mi".into(),
                ephemeral_storage_limit: "128Mi".into(),
                ephemeral_storage_limit_with_scratch: "128Mi".into(),
            }
        );
    }

    #[test]
    fn a_request_in_micro_cores_above_the_default_limit_raises_the_limit() {
        let [cpu_request, cpu_limit, ..] = four("  requests: {cpu: 900000u}\n");
        assert_eq!(
            (cpu_request.as_str(), cpu_limit.as_str()),
            ("900000u", "900000u")
        );
    }

    #[test]
    fn a_limit_in_an_exponent_form_below_the_default_request_caps_it() {
        let amounts = with_resources("  limits: {cpu: '2e-2', memory: 0.03Gi}\n");
        assert_eq!(amounts.cpu_request, "2e-2");
        assert_eq!(amounts.memory_request, "0.03Gi");
    }
}
