//! The desired step: a validated Plugin and the operator's configuration in, every
//! child it becomes out. Pure functions: no client, no clock, no randomness, so every
//! field is tested without a cluster. What can fail is checked before, in
//! [`validate`](super::validate); building cannot fail.

mod network_policy;
mod pod;
mod policy;
mod resources;
mod workload;

pub use network_policy::network_policy;
pub use pod::{BROKER_UID, PLUGIN_UID, pod_template};
pub use policy::{DEFAULT_KV_MAX_VALUE_BYTES, broker_policy};
pub use resources::{PluginResourceAmounts, plugin_resources, read_quantity};
pub use workload::{config_map, deployment, service, service_account};

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use super::config::OperatorConfig;
use super::validate::{InvalidSpec, ValidPlugin};
use crate::api::Plugin;

/// The field manager of every object the operator writes.
pub const FIELD_MANAGER: &str = "plugin-operator";
/// Label on every child naming its Plugin; also the pods' selector.
pub const PLUGIN_LABEL: &str = "plugins.chat.dev/plugin";
/// Label on every child marking who manages it; the operator watches by it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "plugin-operator";

/// Every object one Plugin becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: NetworkPolicy,
}

impl Children {
    /// The replicas the Deployment asks for (1 when it does not say).
    pub fn desired_replicas(&self) -> i32 {
        self.deployment
            .spec
            .as_ref()
            .and_then(|spec| spec.replicas)
            .unwrap_or(1)
    }
}

/// Every child of a validated Plugin.
pub fn desired_children(valid: &ValidPlugin, config: &OperatorConfig) -> Children {
    let names = &valid.names;
    Children {
        service_account: service_account(names),
        config_map: config_map(names, &valid.policy),
        deployment: deployment(valid, config),
        service: service(names),
        network_policy: network_policy(valid.plugin, names, config),
    }
}

/// The names, labels and owner reference shared by one Plugin's children.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildNames {
    pub plugin: String,
    pub namespace: String,
    owner: OwnerReference,
}

impl ChildNames {
    pub fn of(plugin: &Plugin) -> Result<Self, InvalidSpec> {
        let namespace = plugin
            .namespace()
            .ok_or(InvalidSpec::MissingMetadata("namespace"))?;
        let owner = plugin
            .controller_owner_ref(&())
            .ok_or(InvalidSpec::MissingMetadata("uid"))?;
        Ok(Self {
            plugin: plugin.name_any(),
            namespace,
            owner,
        })
    }

    /// Deployment, Service, ServiceAccount and NetworkPolicy share this name.
    pub fn workload(&self) -> String {
        format!("plugin-{}", self.plugin)
    }

    pub fn policy_config_map(&self) -> String {
        format!("plugin-{}-broker-policy", self.plugin)
    }

    /// `<namespace>/<name>`: the identity the broker enforces as `{self}`.
    pub fn plugin_id(&self) -> String {
        format!("{}/{}", self.namespace, self.plugin)
    }

    /// Where the chat system invokes the plugin.
    pub fn endpoint(&self) -> String {
        format!("http://{}.{}.svc:80", self.workload(), self.namespace)
    }

    /// Selects this Plugin's pods.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(PLUGIN_LABEL.to_string(), self.plugin.clone())])
    }

    /// Labels on every child and on the pods.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector();
        labels.insert("app.kubernetes.io/name".into(), self.plugin.clone());
        labels.insert("app.kubernetes.io/component".into(), "chat-plugin".into());
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
        labels
    }

    /// Metadata of a child called `name`, owned by the Plugin.
    pub fn metadata(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::api::{Plugin, PluginSpec};

    /// A Plugin as the API server would hand it over: with a namespace and a uid.
    pub fn plugin(spec_yaml: &str) -> Plugin {
        let spec: PluginSpec = serde_norway::from_str(spec_yaml).expect("test spec parses");
        let mut plugin = Plugin::new("weather", spec);
        plugin.metadata.namespace = Some("team-a".into());
        plugin.metadata.uid = Some("0b1c2d3e-0000-4000-8000-000000000001".into());
        plugin.metadata.generation = Some(3);
        plugin
    }

    pub const MINIMAL: &str = "image: registry.example/weather:1\nport: 8080\n";

    /// The children of a Plugin with this spec, which must be valid.
    pub fn children(spec_yaml: &str) -> super::Children {
        children_with(
            spec_yaml,
            &crate::controller::config::OperatorConfig::example(),
        )
    }

    /// [`children`] under another configuration of the operator.
    pub fn children_with(
        spec_yaml: &str,
        config: &crate::controller::config::OperatorConfig,
    ) -> super::Children {
        let plugin = plugin(spec_yaml);
        let valid =
            crate::controller::validate::validate(&plugin, &crate::policy::default_catalog())
                .expect("valid spec");
        super::desired_children(&valid, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::{MINIMAL, children};

    #[test]
    fn every_child_is_owned_by_the_plugin_as_controller() {
        let children = children(MINIMAL);
        let metas = [
            &children.service_account.metadata,
            &children.config_map.metadata,
            &children.deployment.metadata,
            &children.service.metadata,
            &children.network_policy.metadata,
        ];
        for meta in metas {
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "Plugin");
            assert_eq!(owners[0].name, "weather");
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(meta.namespace.as_deref(), Some("team-a"));
            assert_eq!(meta.labels.as_ref().unwrap()[PLUGIN_LABEL], "weather");
        }
    }

    #[test]
    fn children_are_named_from_the_plugin() {
        let children = children(MINIMAL);
        let names = [
            &children.deployment.metadata.name,
            &children.service.metadata.name,
            &children.service_account.metadata.name,
            &children.network_policy.metadata.name,
            &children.config_map.metadata.name,
        ]
        .map(|name| name.as_deref().unwrap());
        assert_eq!(
            names,
            [
                "plugin-weather",
                "plugin-weather",
                "plugin-weather",
                "plugin-weather",
                "plugin-weather-broker-policy"
            ]
        );
    }
}
