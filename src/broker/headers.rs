//! Which headers cross the broker. The plugin's credentials and proxy headers never
//! reach the chat API; hop-by-hop headers never cross in either direction.

use http::header::{self, HeaderMap, HeaderName};

/// Headers that belong to one connection (RFC 9110 section 7.6.1), plus the
/// non-standard ones proxies still see in the wild.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Headers a plugin could use to act as someone else toward the chat API.
static IDENTITY: [HeaderName; 7] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::HOST,
    header::FORWARDED,
    header::VIA,
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-client-ip"),
];

/// The header that carries the decision id to the chat API, for correlating logs.
pub const DECISION_ID: HeaderName = HeaderName::from_static("x-broker-decision-id");

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// Prepares a plugin's request headers for the chat API: hop-by-hop, credential,
/// proxy and `x-forwarded-*` headers go, and so does any decision id the plugin made up.
pub fn strip_for_chat_api(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    for name in &IDENTITY {
        headers.remove(name);
    }
    headers.remove(&DECISION_ID);
    let forwarded: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-forwarded-"))
        .cloned()
        .collect();
    for name in forwarded {
        headers.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn plugin_credentials_and_proxy_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer stolen"),
            ("cookie", "session=1"),
            ("proxy-authorization", "Basic eA=="),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=1.2.3.4"),
            ("host", "elsewhere"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("x-broker-decision-id", "forged"),
            ("content-type", "application/json"),
            ("x-request-id", "abc"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_for_chat_api(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-request-id"]);
    }
}
