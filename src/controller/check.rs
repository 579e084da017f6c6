//! `plugin-operator check`: what the chart's `helm test` runs in the cluster. It asks
//! an installed operator whether it is ready and the API server whether it serves the
//! Plugin API, and says which of the two failed.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::api::Plugin;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long each of the two questions may take.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// The operator's readiness URL, e.g. http://plugin-operator-metrics.ns.svc:8080/readyz.
    #[arg(long)]
    pub readyz_url: String,
    /// List Plugins in this namespace (the one the check's ServiceAccount may read);
    /// empty: in every namespace.
    #[arg(long, default_value = "")]
    pub plugins_namespace: String,
}

/// Both checks, in order; the first failure is the error.
pub async fn check(args: CheckArgs) -> Result<(), BoxError> {
    let status = tokio::time::timeout(TIMEOUT, get(&args.readyz_url))
        .await
        .map_err(|_| {
            format!(
                "the operator did not answer {} within {TIMEOUT:?}",
                args.readyz_url
            )
        })?
        .map_err(|e| format!("asking the operator at {}: {e}", args.readyz_url))?;
    if status.0 != 200 {
        return Err(format!(
            "the operator is not ready: {} answered {} {}",
            args.readyz_url,
            status.0,
            status.1.trim()
        )
        .into());
    }
    println!("the operator is ready ({})", args.readyz_url);

    let client = Client::try_default().await?;
    let plugins: Api<Plugin> = if args.plugins_namespace.is_empty() {
        Api::all(client)
    } else {
        Api::namespaced(client, &args.plugins_namespace)
    };
    let listed = tokio::time::timeout(TIMEOUT, plugins.list(&ListParams::default().limit(1)))
        .await
        .map_err(|_| format!("the API server did not list Plugins within {TIMEOUT:?}"))?
        .map_err(|e| {
            format!("the API server does not serve the Plugin API (is the CRD installed?): {e}")
        })?;
    println!(
        "the API server serves plugins.chat.dev/v1alpha1 ({} listed)",
        listed.items.len()
    );
    Ok(())
}

/// GET `url`: the status code and the body's text.
async fn get(url: &str) -> Result<(u16, String), BoxError> {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(url.parse()?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
