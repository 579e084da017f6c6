//! The permission model written plainly and separately from the broker: what the
//! property tests and the fuzz targets check `decide` against.

use plugin_operator::policy::{BrokerPolicy, EnforcementMode, ScopeGrant};

/// Whether `policy` allows `method` on `path` (without the query), by the model: the
/// path is absolute and each segment percent-decodes to valid UTF-8 that is neither
/// empty, `.`, `..`, nor contains a separator; the first catalog route whose method
/// and literal segments match decides; its scope must be granted, in the `{channel}`
/// named if the grants are for some channels only; a `{self}` segment must name this
/// plugin (its id with `/` as `.`). In Audit mode the scope and channel grants are not
/// checked; everything else is.
pub fn oracle_allows(method: &str, path: &str, policy: &BrokerPolicy) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let Some(segments) = rest
        .split('/')
        .map(percent_decode)
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    if segments
        .iter()
        .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\\'))
    {
        return false;
    }
    let own_segment = policy.plugin_id.replace('/', ".");
    for route in &policy.catalog {
        let template: Vec<&str> = route.path[1..].split('/').collect();
        if route.method != method
            || template.len() != segments.len()
            || !template
                .iter()
                .zip(&segments)
                .all(|(t, s)| t.starts_with('{') || *t == s.as_str())
        {
            continue;
        }
        let grants: Vec<&ScopeGrant> = policy
            .grants
            .iter()
            .filter(|g| g.scope == route.scope)
            .collect();
        let audit = policy.mode == EnforcementMode::Audit;
        if grants.is_empty() && !audit {
            return false;
        }
        let value_at = |name: &str| {
            template
                .iter()
                .position(|t| *t == name)
                .map(|i| &segments[i])
        };
        let all_channels = grants.iter().any(|g| g.channels.is_empty());
        if !all_channels && !audit {
            let Some(channel) = value_at("{channel}") else {
                return false;
            };
            if !grants.iter().any(|g| g.channels.contains(channel)) {
                return false;
            }
        }
        if value_at("{self}").is_some_and(|owner| *owner != own_segment) {
            return false;
        }
        return true;
    }
    false
}

/// `segment` with each `%XX` decoded; `None` for a bad escape or invalid UTF-8.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
