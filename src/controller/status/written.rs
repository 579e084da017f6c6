//! The statuses the operator wrote and its cache has not shown yet.
//!
//! A reconcile is often started by a child's watch event before the Plugin's own watch
//! has delivered the status the previous reconcile wrote. Comparing against that stale
//! copy would write the same status again (and, since its transition times would be
//! new, a different one). So each status write is remembered with the resourceVersion
//! it was computed from; while the cached Plugin still has that resourceVersion, the
//! remembered status stands in for the cached one. Any newer version, whoever wrote
//! it, is trusted as it is and the memory is dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::runtime::reflector::ObjectRef;

use crate::api::{Plugin, PluginStatus};

/// A status written by the operator, and the resourceVersion of the Plugin it saw.
#[derive(Clone, Debug, PartialEq)]
pub struct WrittenStatus {
    pub based_on: String,
    pub status: PluginStatus,
}

/// The status to compare with: the one written last if the cache is still behind it,
/// otherwise the cached Plugin's.
pub fn previous_status<'a>(
    cached: &'a Plugin,
    written: Option<&'a WrittenStatus>,
) -> Option<&'a PluginStatus> {
    match written {
        Some(written) if cached.metadata.resource_version.as_ref() == Some(&written.based_on) => {
            Some(&written.status)
        }
        _ => cached.status.as_ref(),
    }
}

/// The written statuses the cache may still be behind, per Plugin.
#[derive(Debug, Default)]
pub struct WrittenStatuses(Mutex<HashMap<ObjectRef<Plugin>, WrittenStatus>>);

impl WrittenStatuses {
    pub fn get(&self, plugin: &ObjectRef<Plugin>) -> Option<WrittenStatus> {
        self.lock().get(plugin).cloned()
    }

    pub fn remember(&self, plugin: &Plugin, status: &PluginStatus) {
        let Some(based_on) = plugin.metadata.resource_version.clone() else {
            return;
        };
        self.lock().insert(
            ObjectRef::from_obj(plugin),
            WrittenStatus {
                based_on,
                status: status.clone(),
            },
        );
    }

    /// Drops the memory once the cache has moved past it (or the Plugin is going away).
    pub fn forget_unless_behind(&self, plugin: &Plugin) {
        let reference = ObjectRef::from_obj(plugin);
        let mut map = self.lock();
        if map
            .get(&reference)
            .is_some_and(|w| plugin.metadata.resource_version.as_ref() != Some(&w.based_on))
        {
            map.remove(&reference);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<Plugin>, WrittenStatus>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::desired::fixtures;

    fn plugin_at(resource_version: &str, status: Option<PluginStatus>) -> Plugin {
        let mut plugin = fixtures::plugin(fixtures::MINIMAL);
        plugin.metadata.resource_version = Some(resource_version.into());
        plugin.status = status;
        plugin
    }

    fn status(generation: i64) -> PluginStatus {
        PluginStatus {
            observed_generation: Some(generation),
            ..Default::default()
        }
    }

    #[test]
    fn a_cache_still_at_the_written_from_version_uses_the_written_status() {
        let cached = plugin_at("10", None);
        let written = WrittenStatus {
            based_on: "10".into(),
            status: status(1),
        };
        assert_eq!(previous_status(&cached, Some(&written)), Some(&status(1)));
    }

    #[test]
    fn a_newer_cached_version_wins_whoever_wrote_it() {
        let cached = plugin_at("12", Some(status(2)));
        let written = WrittenStatus {
            based_on: "10".into(),
            status: status(1),
        };
        assert_eq!(previous_status(&cached, Some(&written)), Some(&status(2)));
        assert_eq!(previous_status(&cached, None), Some(&status(2)));
    }

    #[test]
    fn memory_is_dropped_once_the_cache_moves_on() {
        let statuses = WrittenStatuses::default();
        let before = plugin_at("10", None);
        statuses.remember(&before, &status(1));
        statuses.forget_unless_behind(&before);
        assert_eq!(statuses.len(), 1, "forgotten while the cache was behind");
        statuses.forget_unless_behind(&plugin_at("11", Some(status(1))));
        assert!(statuses.is_empty());
    }
}
