//! The operator agrees with the API server on every value it accepts, and a failure
//! shows on the Plugin: quantities read as the API server reads them, a Plugin at every
//! bound of the schema becomes children the API server accepts, and a child the API
//! server refuses puts `ApplyFailed` on the Plugin's status.

mod harness;

use std::time::Duration;

use harness::{Operator, TestNamespace, client, eventually, install_crd};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::{ConfigMap, ResourceQuota, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use plugin_operator::api::quantity::{self, Amount};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator::controller::config::OperatorConfig;
use plugin_operator::controller::desired::desired_children;
use plugin_operator::controller::validate::validate;
use serde::Serialize;
use serde_json::json;

/// A small deterministic generator: the same quantities on every run.
struct Generator(u64);

impl Generator {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }

    /// Up to `most` digits (fewer at random).
    fn digits(&mut self, most: u64) -> String {
        let count = self.next(most + 1);
        (0..count)
            .map(|_| char::from(b'0' + self.next(10) as u8))
            .collect()
    }

    /// A quantity of any form the API server might meet: plain, fractional, with every
    /// suffix and exponent, long mantissas, leading zeros and odd spellings.
    fn quantity(&mut self) -> String {
        const SUFFIXES: &[&str] = &[
            "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ];
        let whole = self.digits(21);
        let fraction = match self.next(3) {
            0 => String::new(),
            1 => format!(".{}", self.digits(13)),
            _ => format!(".{}", self.digits(3)),
        };
        let suffix = match self.next(5) {
            0 => {
                let sign = ["", "-", "+"][self.next(3) as usize];
                let exponent = self.next(40);
                format!("{}{sign}{exponent}", ["e", "E"][self.next(2) as usize])
            }
            _ => SUFFIXES[self.next(SUFFIXES.len() as u64) as usize].to_string(),
        };
        let sign = if self.next(8) == 0 { "+" } else { "" };
        format!("{sign}{whole}{fraction}{suffix}")
    }
}

/// The exact amount of a canonical form (`<digits><suffix>`, every digit kept), read
/// without the API server's parsing rules: canonical forms of large amounts do not
/// read back through them (the API server would cap `2021589424665184300e18`).
fn exact_canonical(text: &str) -> Option<Amount> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let split = unsigned
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(unsigned.len());
    let (digits, suffix) = unsigned.split_at(split);
    let decimal = |exponent| Amount::from_digits(negative, digits, exponent);
    let binary = |power: u32| {
        let value: u128 = digits.parse().ok()?;
        let value = value.checked_mul(1u128.checked_shl(power)?)?;
        Amount::from_digits(negative, &value.to_string(), 0)
    };
    match suffix {
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        exponent => decimal(exponent.strip_prefix('e')?.parse().ok()?),
    }
}

/// How the API server stores `text` in a container's requests or a quota (any
/// ResourceList): its canonical form, or the text itself when it needed no rounding.
async fn stored_form(quotas: &Api<ResourceQuota>, text: &str) -> Result<String, String> {
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "reading"},
        "spec": {"hard": {"requests.cpu": text}},
    }))
    .unwrap();
    match quotas.create(&dry_run(), &quota).await {
        Ok(stored) => Ok(stored.spec.unwrap().hard.unwrap()["requests.cpu"].0.clone()),
        Err(error) => Err(error.to_string()),
    }
}

/// Asks the API server's own CEL whether `text` is a quantity and equals `reading`.
async fn cel_verdict(
    config_maps: &Api<ConfigMap>,
    text: &str,
    reading: &str,
) -> Result<(), String> {
    let probe: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "data": {"text": text, "reading": reading},
    }))
    .unwrap();
    config_maps
        .create(&dry_run(), &probe)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

const NOT_A_QUANTITY: &str = "the API server does not read it as a quantity";
const DIFFERENT: &str = "the API server reads a different amount";

fn samples() -> Vec<String> {
    let mut generator = Generator(0x5eed_1234_abcd_0001);
    let mut samples: Vec<String> = (0..300).map(|_| generator.quantity()).collect();
    samples.extend(
        [
            "900000u", "0.9", "9e-1", "0.1n", "1e-100", "10E", "8Ei", "1.5Gi", "1.Ki", ".5", "5.",
            ".", "+", "Ki", "m", "0", "000.000", "1e+3", "1E3", "12e-3", "1mm", "1e", ".Ei", "1Mb",
            "1 m", "", "-1", "-0.1n",
        ]
        .map(String::from),
    );
    samples
}

#[tokio::test]
async fn quantities_read_as_the_api_server_reads_them() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-quantities", &[]).await;
    let validations = json!([
        {"expression": "isQuantity(object.data.text)", "message": NOT_A_QUANTITY},
        {"expression": "!isQuantity(object.data.text) || quantity(object.data.text).compareTo(quantity(object.data.reading)) == 0",
         "message": DIFFERENT}
    ]);
    let cel = NamespacePolicy::install(&client, &ns.name, "configmaps", validations).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let not_a_quantity: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "probe"}, "data": {"text": "x", "reading": "0"}
    }))
    .unwrap();
    cel.wait_until_it_refuses(&config_maps, &not_a_quantity)
        .await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns.name);
    let (mut compared, mut disagreements) = (0, vec![]);
    for text in samples() {
        let ours = quantity::parse(&text);
        // Exact: digits and an exponent, a form the API server reads without rounding.
        let reading = ours.as_ref().map(|a| a.to_string()).unwrap_or("0".into());
        match (cel_verdict(&config_maps, &text, &reading).await, &ours) {
            (Ok(()), Ok(_)) => compared += 1,
            (Err(refusal), Err(_)) if refusal.contains(NOT_A_QUANTITY) => continue,
            (verdict, _) => {
                disagreements.push(format!(
                    "{text:?}: operator {ours:?}, API server {verdict:?}"
                ));
                continue;
            }
        }
        // Stored in a ResourceList, it is also rounded up to a thousandth.
        let Ok(amount) = ours else { continue };
        let stored = amount.clone().as_stored_in_a_resource_list();
        match stored_form(&quotas, &text).await {
            // Kept as written: the API server did not need to round it.
            Ok(form) if form == text => {
                if stored != amount {
                    disagreements.push(format!(
                        "{text:?}: kept as written, operator rounds to {stored}"
                    ));
                }
            }
            Ok(form) if exact_canonical(&form).as_ref() != Some(&stored) => disagreements.push(
                format!("{text:?}: stored as {form:?}, operator stores {stored}"),
            ),
            Ok(_) => {}
            Err(refusal) if refusal.contains("must be greater than or equal to 0") => {}
            Err(refusal) => disagreements.push(format!("{text:?}: quota refused: {refusal}")),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(compared >= 250, "only {compared} quantities were compared");
}

/// Plugins at the schema's bounds, each with values spelled the ways the schema allows.
fn plugins_at_the_bounds() -> Vec<serde_json::Value> {
    let egress = |cidrs: &[&str]| {
        cidrs
            .iter()
            .map(|cidr| json!({"cidr": cidr, "ports": [1, 65535]}))
            .collect::<Vec<_>>()
    };
    vec![
        json!({
            "image": "registry.example/weather@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "port": 65535, "replicas": 50,
            "resources": {"requests": {"cpu": "8", "memory": "16Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}},
            "timeouts": {"requestSeconds": 300}, "concurrency": {"maxInFlight": 1024},
            "permissions": {
                "database": {"access": "ReadWrite", "maxValueBytes": 1048576},
                "filesystem": {"scratch": {"sizeLimit": "4Gi"}},
                "network": {"egress": egress(&["203.0.113.7/32", "2001:db8::/32", "10.1.2.3/8", "2001:DB8::1/64", "0.0.0.0/1"])}
            }
        }),
        json!({
            "image": "registry.example/weather:1", "port": 1,
            "resources": {"requests": {"cpu": "900000u", "memory": "4Mi"}},
            "permissions": {"filesystem": {"scratch": {"sizeLimit": "1Mi"}}}
        }),
        json!({
            "image": "registry.example/weather:1", "port": 8080,
            "resources": {"requests": {"cpu": "1n", "memory": "0.004Gi"}, "limits": {"cpu": "2e-3"}}
        }),
        json!({
            "image": "registry.example/weather:1", "port": 8080,
            "resources": {"limits": {"cpu": "0.01", "memory": "5000k"}}
        }),
        json!({
            "image": "registry.example/weather:1", "port": 8080,
            "resources": {"requests": {"cpu": "7.999999999", "memory": "16e9"}}
        }),
    ]
}

async fn dry_run_apply<K>(client: &Client, namespace: &str, object: &K) -> Result<(), String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply("plugin-operator-tests").dry_run();
    api.patch(&object.name_any(), &params, &Patch::Apply(object))
        .await
        .map(|_| ())
        .map_err(|error| format!("{} {}: {error}", K::kind(&()), object.name_any()))
}

#[tokio::test]
async fn a_plugin_at_every_bound_becomes_children_the_api_server_accepts() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-bounds", &[]).await;
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let config = OperatorConfig::example();
    let mut refusals = vec![];
    for (index, spec) in plugins_at_the_bounds().into_iter().enumerate() {
        let spec: PluginSpec = serde_json::from_value(spec).unwrap();
        let plugin = Plugin::new(&format!("bounds-{index}"), spec);
        // The API server's own reading of the Plugin, defaults and all, with a uid.
        let plugin = plugins
            .create(&dry_run(), &plugin)
            .await
            .unwrap_or_else(|e| panic!("bounds-{index} is a valid Plugin: {e}"));
        let valid = validate(&plugin, &config)
            .unwrap_or_else(|e| panic!("the operator refuses bounds-{index}: {e}"));
        let children = desired_children(&valid, &config);
        let results = [
            dry_run_apply(&client, &ns.name, &children.service_account).await,
            dry_run_apply(&client, &ns.name, &children.config_map).await,
            dry_run_apply(&client, &ns.name, &children.deployment).await,
            dry_run_apply(&client, &ns.name, &children.service).await,
            dry_run_apply(&client, &ns.name, &children.network_policy).await,
        ];
        refusals.extend(results.into_iter().filter_map(Result::err));
    }
    assert!(
        refusals.is_empty(),
        "the API server refuses children the operator builds from valid Plugins:\n{}",
        refusals.join("\n")
    );
}

/// A ValidatingAdmissionPolicy with `validations` on one resource (core group), bound to
/// one namespace; removed when dropped.
struct NamespacePolicy {
    name: String,
}

impl NamespacePolicy {
    async fn install(
        client: &Client,
        namespace: &str,
        resource: &str,
        validations: serde_json::Value,
    ) -> Self {
        let name = format!("{resource}-{namespace}");
        let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": [resource]
                }]},
                "validations": validations
            }
        }))
        .unwrap();
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
            }
        }))
        .unwrap();
        let params = PostParams::default();
        Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .create(&params, &policy)
            .await
            .expect("the policy is created");
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .create(&params, &binding)
            .await
            .expect("the binding is created");
        Self { name }
    }

    /// Waits until the API server refuses `object` (a dry-run create), which the policy
    /// refuses once the API server has taken it up (a second or two).
    async fn wait_until_it_refuses<K>(&self, api: &Api<K>, object: &K)
    where
        K: Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        eventually("the admission policy to take effect", WAIT, || async {
            api.create(&dry_run(), object).await.err().map(|_| ())
        })
        .await;
    }
}

impl Drop for NamespacePolicy {
    fn drop(&mut self) {
        let name = self.name.clone();
        // As for TestNamespace: a fresh client on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let Ok(client) = Client::try_default().await else {
                    return;
                };
                let params = DeleteParams::default();
                let bindings = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone());
                let _ = bindings.delete(&name, &params).await;
                let _ = Api::<ValidatingAdmissionPolicy>::all(client)
                    .delete(&name, &params)
                    .await;
            });
        })
        .join();
    }
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

const WAIT: Duration = Duration::from_secs(30);
const REFUSAL: &str = "services are refused in this namespace by a test policy";

fn condition(plugin: &Plugin, type_: &str) -> Option<(String, String, String, Option<i64>)> {
    let found = plugin
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((
        found.status.clone(),
        found.reason.clone(),
        found.message.clone(),
        found.observed_generation,
    ))
}

#[tokio::test]
async fn a_child_the_api_server_refuses_puts_apply_failed_on_the_plugin() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-apply-failed", &[]).await;
    let refusal = json!([{"expression": "false", "message": REFUSAL}]);
    let refuse_services = NamespacePolicy::install(&client, &ns.name, "services", refusal).await;
    let probe: Service = serde_json::from_value(json!({
        "metadata": {"name": "probe"}, "spec": {"ports": [{"port": 80}]}
    }))
    .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    refuse_services
        .wait_until_it_refuses(&services, &probe)
        .await;
    let _operator = Operator::start(&ns.name, &[]).await;
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let spec: PluginSpec = serde_json::from_value(json!({
        "image": "registry.example/weather:1", "port": 8080, "paused": true
    }))
    .unwrap();
    let created = plugins
        .create(&PostParams::default(), &Plugin::new("refused", spec))
        .await
        .unwrap();
    let generation = created.metadata.generation;

    let failed = eventually("Ready=False with reason ApplyFailed", WAIT, || {
        let plugins = plugins.clone();
        async move {
            let plugin = plugins.get("refused").await.ok()?;
            let ready = condition(&plugin, "Ready")?;
            (ready.1 == "ApplyFailed").then_some(plugin)
        }
    })
    .await;
    let (status, _, message, observed) = condition(&failed, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(message.contains(REFUSAL), "{message}");
    assert!(message.contains("Service plugin-refused"), "{message}");
    assert_eq!(observed, generation);
    assert_eq!(
        failed.status.as_ref().unwrap().observed_generation,
        generation
    );
    let stalled = condition(&failed, "Stalled").unwrap();
    assert_eq!(
        (stalled.0.as_str(), stalled.1.as_str()),
        ("True", "ApplyFailed")
    );
    let reconciling = condition(&failed, "Reconciling").unwrap();
    assert_eq!(
        reconciling.0, "False",
        "kstatus reads Failed only without Reconciling"
    );

    drop(refuse_services);
    eventually(
        "the Plugin to recover once Services are allowed",
        Duration::from_secs(90),
        || {
            let plugins = plugins.clone();
            async move {
                let plugin = plugins.get("refused").await.ok()?;
                let ready = condition(&plugin, "Ready")?;
                let stalled = condition(&plugin, "Stalled")?;
                (ready.0 == "True" && stalled.0 == "False").then_some(())
            }
        },
    )
    .await;
}
