//! The ScopeCatalog's check of a spec: a chat-API scope the operator's catalog does not
//! define is an excess (reason `UnknownScope`) and is removed from the grants, so the
//! broker never hears of it. Admission refuses the same scopes for new writes
//! (charts/.../scope-catalog-admission.yaml); this check covers Plugins admitted before
//! the catalog changed, or while it was missing.

use super::Excess;
use crate::api::{PluginSpec, ScopeCatalogSpec};

/// The catalog the operator uses: its name, and its spec unless it does not exist.
#[derive(Clone, Copy, Debug)]
pub struct Catalog<'a> {
    pub name: &'a str,
    pub spec: Option<&'a ScopeCatalogSpec>,
}

impl Catalog<'_> {
    fn defines(&self, scope: &str) -> bool {
        self.spec.is_some_and(|spec| spec.defines(scope))
    }

    /// What the catalog offers, for a message.
    fn offers(&self) -> String {
        match self.spec {
            Some(spec) => format!(
                "ScopeCatalog {} does not define this scope; it defines [{}]",
                self.name,
                spec.chat_scope_names().join(", ")
            ),
            None => format!(
                "ScopeCatalog {} does not exist, so no scope is defined; ask the cluster's admins to create it",
                self.name
            ),
        }
    }
}

/// Removes from `granted` every chat-API scope `catalog` does not define and records
/// each as an excess; returns the scopes removed.
pub(super) fn keep_defined_scopes(
    granted: &mut PluginSpec,
    catalog: Catalog<'_>,
    excesses: &mut Vec<Excess>,
) -> Vec<String> {
    let Some(permissions) = granted.permissions.as_mut() else {
        return vec![];
    };
    let mut unknown = vec![];
    permissions.chat_api.retain(|grant| {
        if catalog.defines(&grant.scope) {
            return true;
        }
        excesses.push(Excess {
            field: format!("permissions.chatApi[{}]", grant.scope),
            asked: grant.scope.clone(),
            policy: String::new(),
            allowed: catalog.offers(),
        });
        unknown.push(grant.scope.clone());
        false
    });
    unknown
}
