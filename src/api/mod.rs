//! The `Plugin` custom resource (being built).

pub fn print_crd_yaml() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("not built yet".into())
}
