//! Which headers cross the broker. The plugin's credentials and proxy headers never
//! reach the chat API; hop-by-hop headers never cross in either direction.

use http::header::{self, HeaderMap, HeaderName};

/// Headers that belong to one connection (RFC 9110 section 7.6.1), plus the
/// non-standard ones proxies still see in the wild.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "keep-alive",
    "proxy-connection",
];

/// Headers a plugin could use to act as someone else toward the chat API.
const IDENTITY: [&str; 7] = [
    "authorization",
    "cookie",
    "host",
    "forwarded",
    "via",
    "x-real-ip",
    "x-client-ip",
];

/// Headers that make common servers and frameworks treat a call as another method or
/// path than its request line says, so as another call than the one decided.
static OVERRIDES: [HeaderName; 5] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// The query parameter that method-override middleware (Express, Laravel, Rack) reads.
const METHOD_PARAMETER: &[u8] = b"_method";

/// The header name or query parameter by which a call asks to be taken for another
/// method or path, if it does. Allocates nothing.
pub fn override_in(headers: &HeaderMap, query: Option<&str>) -> Option<&'static str> {
    if let Some(name) = OVERRIDES.iter().find(|name| headers.contains_key(*name)) {
        return Some(name.as_str());
    }
    query
        .is_some_and(names_method_parameter)
        .then_some("_method")
}

/// Whether a query has a `_method` parameter, its name compared after percent-decoding
/// and in any case, with `&` or `;` between parameters.
fn names_method_parameter(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        decodes_to(name.as_bytes(), METHOD_PARAMETER)
    })
}

fn decodes_to(encoded: &[u8], wanted: &[u8]) -> bool {
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let (mut at, mut matched) = (0, 0);
    while at < encoded.len() {
        let byte = match (encoded[at], encoded.get(at + 1..at + 3)) {
            (b'%', Some(&[high, low])) => match (hex(high), hex(low)) {
                (Some(high), Some(low)) => {
                    at += 2;
                    u8::try_from(high * 16 + low).unwrap_or(0)
                }
                _ => b'%',
            },
            (byte, _) => byte,
        };
        at += 1;
        if !wanted
            .get(matched)
            .is_some_and(|expected| expected.eq_ignore_ascii_case(&byte))
        {
            return false;
        }
        matched += 1;
    }
    matched == wanted.len()
}

/// The header that carries the decision id to the chat API, for correlating logs.
pub const DECISION_ID: HeaderName = HeaderName::from_static("x-broker-decision-id");

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed = listed_in_connection(headers);
    remove_where(headers, |name| {
        is_hop_by_hop(name) || listed.iter().any(|listed| listed == name)
    });
}

/// A plugin's request headers as the chat API gets them: hop-by-hop, credential, proxy
/// and `x-forwarded-*` headers go, and so does any decision id the plugin made up.
pub fn for_chat_api(mut headers: HeaderMap) -> HeaderMap {
    let listed = listed_in_connection(&headers);
    remove_where(&mut headers, |name| {
        is_hop_by_hop(name)
            || IDENTITY.contains(&name)
            || name == DECISION_ID.as_str()
            || name.starts_with("x-forwarded-")
            || listed.iter().any(|listed| listed == name)
    });
    headers
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// The header names a `Connection` header lists beyond the hop-by-hop ones (usually
/// none: `keep-alive` and `close` are the common values, so this rarely allocates).
fn listed_in_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|name| {
            !name.eq_ignore_ascii_case("close")
                && !HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
        })
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect()
}

/// Removes, in place, every header whose name `doomed` picks, with all its values.
/// Header maps here are small (hyper accepts at most 100 headers), so scanning again
/// for the next one costs less than building a new map, and allocates nothing.
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    while let Some(name) = headers.keys().find(|name| doomed(name.as_str())).cloned() {
        headers.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers_of(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    #[test]
    fn plugin_credentials_and_proxy_headers_are_stripped() {
        let headers = headers_of(&[
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
        ]);
        let headers = for_chat_api(headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-request-id"]);
    }

    #[test]
    fn every_value_of_a_repeated_header_is_kept_in_order() {
        let headers = headers_of(&[
            ("accept", "text/plain"),
            ("cookie", "a=1"),
            ("accept", "application/json"),
            ("cookie", "b=2"),
        ]);
        let headers = for_chat_api(headers);
        let accept: Vec<_> = headers.get_all("accept").iter().collect();
        assert_eq!(accept, ["text/plain", "application/json"]);
        assert!(headers.get("cookie").is_none());
    }

    #[test]
    fn each_override_header_is_named_in_any_case() {
        for name in [
            "X-HTTP-Method-Override",
            "X-HTTP-Method",
            "X-Method-Override",
            "X-Original-URL",
            "X-Rewrite-URL",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("DELETE"),
            );
            assert_eq!(
                override_in(&headers, None),
                Some(name.to_ascii_lowercase().as_str())
            );
        }
        let plain = headers_of(&[("content-type", "application/json"), ("x-request-id", "1")]);
        assert_eq!(override_in(&plain, Some("limit=5&method=x")), None);
    }

    #[test]
    fn a_method_parameter_is_found_however_it_is_spelled() {
        for query in [
            "_method=DELETE",
            "a=1&_method=PUT",
            "a=1;_method=PUT",
            "%5Fmethod=DELETE",
            "%5fMETHOD=DELETE",
            "_method",
        ] {
            assert_eq!(
                override_in(&HeaderMap::new(), Some(query)),
                Some("_method"),
                "{query}"
            );
        }
        for query in [
            "method=DELETE",
            "x_method=1",
            "_methods=1",
            "a=_method",
            "%5",
            "_metho%",
        ] {
            assert_eq!(override_in(&HeaderMap::new(), Some(query)), None, "{query}");
        }
    }

    #[test]
    fn hop_by_hop_headers_go_in_both_directions() {
        let mut headers = headers_of(&[
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
            ("set-cookie", "a=1"),
        ]);
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "set-cookie"]);
    }

    #[test]
    fn every_connection_value_and_listed_name_in_any_case_goes() {
        let mut headers = headers_of(&[
            ("connection", "Keep-Alive"),
            ("connection", "X-Private-One ,x-private-two"),
            ("x-private-one", "1"),
            ("x-private-two", "2"),
            ("keep-alive", "timeout=5"),
            ("content-length", "2"),
        ]);
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-length"]);
    }

    #[test]
    fn headers_without_hop_by_hop_ones_are_left_as_they_are() {
        let before = headers_of(&[("content-type", "text/plain"), ("x-a", "1"), ("x-a", "2")]);
        let mut after = before.clone();
        strip_hop_by_hop(&mut after);
        assert_eq!(after, before);
    }
}
