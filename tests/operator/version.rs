//! `plugin-operator --version` names the commit it was built from.

use std::process::Command;

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    let head = String::from_utf8(head.stdout).unwrap().trim().to_string();
    assert_eq!(head.len(), 12, "the tests run in a git checkout");
    let version = Command::new(super::OPERATOR)
        .arg("--version")
        .output()
        .expect("the operator binary runs");
    let version = String::from_utf8(version.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!(
            "plugin-operator {} (commit {head})",
            env!("CARGO_PKG_VERSION")
        )
    );
}
