//! Which additions count as drift, per kind and field. Fields the operator writes are
//! always compared; these rules say where a field it does not write is refused too.
//!
//! | kind | refused additions |
//! | --- | --- |
//! | NetworkPolicy | anything in `spec`: a rule, a peer, a port range, a selector term |
//! | ConfigMap | a key in `data`, `binaryData`, `immutable` |
//! | Deployment | `spec.paused`; a selector term; a pod label or annotation (but `kubectl rollout restart`'s); host namespaces, user namespaces, a runtime class, a container, a volume; in a container anything the API server does not default (a command, `envFrom`, a hook, a probe, a mount, a port, a variable, a security setting, a resource) |
//! | Service | a selector term; `externalIPs`, `externalName`, a load balancer's IP or source ranges (its `type` is written, so a NodePort or LoadBalancer is a change) |
//! | ServiceAccount | nothing (it holds no secrets the pod mounts) |
//!
//! Left to other writers: scheduling (node selectors, tolerations, affinity, priority),
//! image pull secrets, DNS settings, annotations and labels on the objects themselves,
//! and every field the API server defaults.

/// What a field of the actual object may hold beyond what the operator writes.
#[derive(Clone, Copy, Debug)]
pub enum Extras {
    /// Any addition.
    Open,
    /// No addition, but these keys (the API server's defaults, or a known harmless one).
    Refused { except: &'static [&'static str] },
    /// Any addition but these keys.
    RefusedOnly(&'static [&'static str]),
}

impl Extras {
    pub fn refuses(&self, key: &str) -> bool {
        match self {
            Self::Open => false,
            Self::Refused { except } => !except.contains(&key),
            Self::RefusedOnly(keys) => keys.contains(&key),
        }
    }
}

const NONE: Extras = Extras::Refused { except: &[] };

/// The rules of one kind: the additions refused at a field (None: no rule, so any
/// addition there is fine, and one refused by the field's parent is drift as a whole),
/// and which fields are quantities.
#[derive(Clone, Copy)]
pub struct Rules {
    pub extras: fn(&str) -> Option<Extras>,
    pub quantity: fn(&str) -> bool,
}

pub fn for_kind(kind: &str) -> Rules {
    let extras = match kind {
        "NetworkPolicy" => network_policy,
        "ConfigMap" => config_map,
        "Deployment" => deployment,
        "Service" => service,
        _ => nothing,
    };
    Rules {
        extras,
        quantity: is_quantity,
    }
}

fn nothing(_: &str) -> Option<Extras> {
    None
}

fn network_policy(field: &str) -> Option<Extras> {
    (field == "spec" || field.starts_with("spec.")).then_some(NONE)
}

fn config_map(field: &str) -> Option<Extras> {
    matches!(field, "" | "data").then_some(NONE)
}

/// Ways to reach the Service's pods from outside the cluster; its `type` is written by
/// the operator (`ClusterIP`), so a change of it is drift already.
const SERVICE_EXPOSURE: &[&str] = &[
    "externalIPs",
    "externalName",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
];

fn service(field: &str) -> Option<Extras> {
    match field {
        "spec" => Some(Extras::RefusedOnly(SERVICE_EXPOSURE)),
        "spec.selector" => Some(NONE),
        _ => None,
    }
}

const POD_SPEC_REFUSED: &[&str] = &[
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "hostUsers",
    "shareProcessNamespace",
    "serviceAccountName",
    "automountServiceAccountToken",
    "securityContext",
    "runtimeClassName",
    "initContainers",
    "ephemeralContainers",
    "volumes",
];

/// What the API server sets on every container of a pod template.
const CONTAINER_DEFAULTS: &[&str] = &["terminationMessagePath", "terminationMessagePolicy"];

fn deployment(field: &str) -> Option<Extras> {
    let container = [
        "spec.template.spec.containers[]",
        "spec.template.spec.initContainers[]",
    ]
    .iter()
    .find_map(|prefix| field.strip_prefix(prefix));
    if let Some(within) = container {
        return match within {
            "" => Some(Extras::Refused {
                except: CONTAINER_DEFAULTS,
            }),
            ".securityContext"
            | ".securityContext.capabilities"
            | ".resources"
            | ".resources.requests"
            | ".resources.limits"
            | ".env[]"
            | ".ports[]"
            | ".volumeMounts[]" => Some(NONE),
            _ => None,
        };
    }
    match field {
        "spec" => Some(Extras::RefusedOnly(&["paused"])),
        "spec.selector" | "spec.selector.matchLabels" => Some(NONE),
        "spec.template.metadata" => Some(Extras::RefusedOnly(&["labels", "annotations"])),
        "spec.template.metadata.labels" => Some(NONE),
        "spec.template.metadata.annotations" => Some(Extras::Refused {
            except: &["kubectl.kubernetes.io/restartedAt"],
        }),
        "spec.template.spec" => Some(Extras::RefusedOnly(POD_SPEC_REFUSED)),
        "spec.template.spec.securityContext" | "spec.template.spec.volumes[]" => Some(NONE),
        _ => None,
    }
}

/// Requests, limits and size limits: compared as amounts, not as text.
fn is_quantity(field: &str) -> bool {
    field.contains(".resources.requests.")
        || field.contains(".resources.limits.")
        || field.ends_with(".emptyDir.sizeLimit")
}
