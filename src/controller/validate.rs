//! The validate step: what the API server's schema cannot see, checked before anything
//! is built. Pure: a Plugin and the scope catalog's routes in; out come the facts
//! every child is built from (names, the compiled broker policy, the container's
//! resources), or the reason the spec cannot be built. Reading a value here, once,
//! means the desired step never has to fail or guess.

use super::desired::{ChildNames, PluginResourceAmounts, broker_policy, plugin_resources};
use crate::api::Plugin;
use crate::api::image::{self, ImageProblem};
use crate::api::quantity::QuantityError;
use crate::policy::{BrokerPolicy, CatalogRoute};

/// A Plugin the operator can build, with what was read from it.
#[derive(Clone, Debug)]
pub struct ValidPlugin<'a> {
    pub plugin: &'a Plugin,
    pub names: ChildNames,
    pub policy: BrokerPolicy,
    pub resources: PluginResourceAmounts,
    /// The RuntimeClass the Plugin's PluginPolicies force onto its pods.
    pub runtime_class_name: Option<String>,
}

/// Why a Plugin that the API server accepted cannot be built. Objects written before a
/// schema change, or around it, reach the operator without the schema's checks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSpec {
    #[error("the Plugin has no {0} yet")]
    MissingMetadata(&'static str),
    #[error("spec.image {image:?}: {problem}")]
    Image {
        image: String,
        problem: ImageProblem,
    },
    #[error("{field} {value:?} is not a quantity: {source}")]
    Quantity {
        field: &'static str,
        value: String,
        source: QuantityError,
    },
    #[error("{0} is too large")]
    TooLarge(&'static str),
    #[error(
        "rateLimits names {0:?}, which the Plugin is not granted; grant it in permissions or remove the limit"
    )]
    RateLimitOnUngrantedScope(String),
    #[error("the compiled broker policy is invalid: {0}")]
    InvalidPolicy(String),
}

/// Checks `plugin` and reads what its children are built from.
pub fn validate<'a>(
    plugin: &'a Plugin,
    catalog: &[CatalogRoute],
) -> Result<ValidPlugin<'a>, InvalidSpec> {
    let names = ChildNames::of(plugin)?;
    image::check(&plugin.spec.image).map_err(|problem| InvalidSpec::Image {
        image: plugin.spec.image.clone(),
        problem,
    })?;
    // Reads every quantity of the spec, /scratch's size included.
    let resources = plugin_resources(&plugin.spec)?;
    let policy = broker_policy(plugin, &names, catalog);
    if let Some(limit) = policy
        .rate_limits
        .iter()
        .find(|limit| !policy.grants.iter().any(|g| g.scope == limit.scope))
    {
        return Err(InvalidSpec::RateLimitOnUngrantedScope(limit.scope.clone()));
    }
    policy
        .validate()
        .map_err(|error| InvalidSpec::InvalidPolicy(error.to_string()))?;
    Ok(ValidPlugin {
        plugin,
        names,
        policy,
        resources,
        runtime_class_name: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::desired::fixtures::{MINIMAL, plugin};
    use crate::policy::default_catalog;

    fn check(extra: &str) -> Result<(), InvalidSpec> {
        let plugin = plugin(&format!("{MINIMAL}{extra}"));
        validate(&plugin, &default_catalog()).map(|_| ())
    }

    #[test]
    fn minimal_plugin_is_valid() {
        assert_eq!(check(""), Ok(()));
    }

    #[test]
    fn plugin_without_uid_cannot_be_built() {
        let mut p = plugin(MINIMAL);
        p.metadata.uid = None;
        assert_eq!(
            validate(&p, &default_catalog()).err(),
            Some(InvalidSpec::MissingMetadata("uid"))
        );
    }

    #[test]
    fn kv_write_limit_with_read_only_database_is_refused() {
        let error = check(
            "permissions:\n  database: {access: ReadOnly}\nrateLimits:\n- {scope: 'kv:write', perMinute: 60}\n",
        )
        .unwrap_err();
        assert_eq!(
            error,
            InvalidSpec::RateLimitOnUngrantedScope("kv:write".into())
        );
    }

    #[test]
    fn kv_limits_with_read_write_database_are_kept() {
        assert_eq!(
            check(
                "permissions:\n  database: {access: ReadWrite}\nrateLimits:\n- {scope: 'kv:write', perMinute: 60}\n- {scope: 'kv:read', perMinute: 60}\n"
            ),
            Ok(())
        );
    }

    #[test]
    fn unreadable_quantity_names_its_field() {
        let error = check("resources:\n  requests: {cpu: 12parsecs}\n").unwrap_err();
        assert!(
            matches!(
                error,
                InvalidSpec::Quantity {
                    field: "resources.requests.cpu",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("12parsecs"), "{error}");
    }

    #[test]
    fn image_no_registry_can_serve_is_refused_with_the_crds_message() {
        for (image, problem) in [
            ("Reg.Example/W:1", ImageProblem::Format),
            ("w@sha256:nothex", ImageProblem::Digest),
            ("registry.example/weather\t:1", ImageProblem::Format),
            ("registry.example/weather:", ImageProblem::Format),
        ] {
            let yaml = format!("image: {image:?}\nport: 8080\n");
            let error = validate(&plugin(&yaml), &default_catalog()).unwrap_err();
            assert_eq!(
                error,
                InvalidSpec::Image {
                    image: image.into(),
                    problem
                },
                "{image:?}"
            );
            assert!(error.to_string().contains(&problem.to_string()), "{error}");
        }
    }
}
