//! Where forwarded calls go: the chat API's base URL, or the plugin on 127.0.0.1.

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};

/// Where calls go: scheme, host and an optional path prefix that is put before the
/// plugin's path.
#[derive(Clone, Debug)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
    path_prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} must be an absolute http:// or https:// URL without a query")]
    NotABaseUrl(String),
    #[error("cannot read the CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error(
        "no trusted CA certificates found for {0}: {1}; name the CAs that issued the chat API's certificate with --chat-api-ca-file"
    )]
    NoRoots(String, String),
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let bad = || TargetError::NotABaseUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let scheme = uri.scheme().cloned().ok_or_else(bad)?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS || uri.query().is_some() {
            return Err(bad());
        }
        let authority = uri.authority().cloned().ok_or_else(bad)?;
        if authority.as_str().contains('@') {
            return Err(bad());
        }
        Ok(Self {
            scheme,
            authority,
            path_prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    pub fn plugin(port: u16) -> Self {
        Self {
            scheme: Scheme::HTTP,
            authority: Authority::try_from(format!("127.0.0.1:{port}")).expect("valid authority"),
            path_prefix: String::new(),
        }
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// The URI of a call whose request target was `path_and_query`.
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let builder = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone());
        let builder = match path_and_query {
            // The common case: no prefix, and the plugin's own path is reused as parsed.
            Some(path_and_query) if self.path_prefix.is_empty() => {
                builder.path_and_query(path_and_query.clone())
            }
            _ => {
                let path_and_query = path_and_query.map_or("/", PathAndQuery::as_str);
                builder.path_and_query(format!("{}{path_and_query}", self.path_prefix))
            }
        };
        builder.build()
    }
}

/// The base URL, as given (for log lines).
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme, self.authority, self.path_prefix
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URI a call to `path_and_query` is forwarded to, with the base URL `base`.
    fn forwarded(base: &str, path_and_query: &'static str) -> String {
        let target = Target::parse(base).unwrap();
        let pq = PathAndQuery::from_static(path_and_query);
        target.uri_for(Some(&pq)).unwrap().to_string()
    }

    #[test]
    fn base_url_path_prefix_is_put_before_the_call_path() {
        let uri = forwarded(
            "http://chat-api.chat.svc:8080/base/",
            "/api/v1/users?limit=5",
        );
        assert_eq!(
            uri,
            "http://chat-api.chat.svc:8080/base/api/v1/users?limit=5"
        );
    }

    #[test]
    fn without_a_prefix_the_call_path_is_kept_as_is() {
        let uri = forwarded("http://chat-api:8080", "/api/v1/users?limit=5");
        assert_eq!(uri, "http://chat-api:8080/api/v1/users?limit=5");
        let target = Target::parse("http://chat-api:8080").unwrap();
        let without_path = target.uri_for(None).unwrap().to_string();
        assert_eq!(without_path, "http://chat-api:8080/");
    }

    #[test]
    fn base_url_must_be_http_or_https_without_credentials() {
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("chat-api:8080").is_err());
        assert!(Target::parse("http://user:pw@chat-api/").is_err());
        assert!(Target::parse("http://chat-api/?a=1").is_err());
        assert!(Target::parse("https://chat-api").unwrap().is_https());
    }

    #[test]
    fn target_is_shown_as_its_base_url() {
        let target = Target::parse("https://chat-api.chat.svc:8443/base/").unwrap();
        assert_eq!(target.to_string(), "https://chat-api.chat.svc:8443/base");
    }
}
