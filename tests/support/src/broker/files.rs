//! Files laid out like the volumes the kubelet mounts: a scratch directory, and updates
//! through an atomic swap of the `..data` symlink.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "broker-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes files the way the kubelet updates a ConfigMap or projected volume: into a
/// fresh timestamped directory, then an atomic swap of the `..data` symlink.
pub fn write_like_kubelet(dir: &Path, file_name: &str, content: &[u8]) {
    static VERSION: AtomicUsize = AtomicUsize::new(0);
    let version = format!("..v{}", VERSION.fetch_add(1, Ordering::SeqCst));
    let version_dir = dir.join(&version);
    std::fs::create_dir_all(&version_dir).unwrap();
    std::fs::write(version_dir.join(file_name), content).unwrap();
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&version, &staged).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&staged, dir.join("..data")).unwrap();
    let link = dir.join(file_name);
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(Path::new("..data").join(file_name), &link).unwrap();
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
}
