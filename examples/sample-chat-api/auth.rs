//! Who is calling: the bearer token, confirmed by the API server's TokenReview for the
//! chat API's audience, names a plugin's ServiceAccount.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// `<namespace>.<name>` of the plugin, as `{self}` in key-value paths.
    pub plugin_segment: String,
}

pub struct Authenticator {
    client: kube::Client,
    audience: String,
    cache: Mutex<HashMap<String, (Caller, Instant)>>,
}

const CACHE_FOR: Duration = Duration::from_secs(60);

impl Authenticator {
    pub fn new(client: kube::Client, audience: String) -> Self {
        Self {
            client,
            audience,
            cache: Mutex::default(),
        }
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, String> {
        let header = headers
            .get("authorization")
            .ok_or("no Authorization header")?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or("Authorization is not a bearer token")?
            .trim()
            .to_string();
        if let Some((caller, at)) = self.cache.lock().unwrap().get(&token)
            && at.elapsed() < CACHE_FOR
        {
            return Ok(caller.clone());
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.clone()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("TokenReview failed: {e}"))?;
        let status = reviewed.status.ok_or("TokenReview gave no status")?;
        if status.authenticated != Some(true) {
            return Err(status
                .error
                .unwrap_or_else(|| "token not accepted for this audience".into()));
        }
        let username = status.user.and_then(|u| u.username).unwrap_or_default();
        let (namespace, account) = username
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .ok_or("the token is not a ServiceAccount's")?;
        let plugin = account
            .strip_prefix("plugin-")
            .ok_or("the ServiceAccount is not a plugin's")?;
        let caller = Caller {
            plugin_segment: format!("{namespace}.{plugin}"),
        };
        self.cache
            .lock()
            .unwrap()
            .insert(token, (caller.clone(), Instant::now()));
        Ok(caller)
    }
}
