//! Path templates of catalog routes, such as `/api/v1/channels/{channel}/messages`.

use std::fmt;

/// The placeholder whose value is checked against a grant's channel list.
pub const CHANNEL_PLACEHOLDER: &str = "channel";
/// The placeholder whose value must be the plugin's own identity.
pub const SELF_PLACEHOLDER: &str = "self";

/// One `/`-separated segment of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateSegment {
    /// Must equal the request's segment (after percent-decoding).
    Literal(String),
    /// `{channel}`: any segment, checked against the grant's channels.
    Channel,
    /// `{self}`: must equal [`crate::policy::BrokerPolicy::self_segment`].
    SelfId,
    /// `{anything-else}`: any one non-empty segment.
    Any(String),
}

impl TemplateSegment {
    pub fn is_placeholder(&self) -> bool {
        !matches!(self, TemplateSegment::Literal(_))
    }
}

/// A parsed catalog path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<TemplateSegment>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("path template {0:?} must start with '/'")]
    NotAbsolute(String),
    #[error("path template {0:?} has an empty segment ('//' or a trailing '/')")]
    EmptySegment(String),
    #[error(
        "path template {template:?} has the segment {segment:?}; a literal segment may use only \
         letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : @ and may not be '.' or '..', \
         a placeholder is '{{name}}' with a name of letters, digits, '-' or '_'"
    )]
    BadSegment { template: String, segment: String },
    #[error("path template {template:?} uses {{{name}}} more than once")]
    RepeatedPlaceholder { template: String, name: String },
}

impl PathTemplate {
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let Some(rest) = template.strip_prefix('/') else {
            return Err(TemplateError::NotAbsolute(template.into()));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if raw.is_empty() {
                return Err(TemplateError::EmptySegment(template.into()));
            }
            let segment = parse_segment(raw).ok_or_else(|| TemplateError::BadSegment {
                template: template.into(),
                segment: raw.into(),
            })?;
            if let Some(name) = placeholder_name(&segment)
                && segments.contains(&segment)
            {
                return Err(TemplateError::RepeatedPlaceholder {
                    template: template.into(),
                    name: name.into(),
                });
            }
            segments.push(segment);
        }
        Ok(Self { segments })
    }

    pub fn segments(&self) -> &[TemplateSegment] {
        &self.segments
    }

    /// Two templates overlap when some path matches both: same length, and at every
    /// position equal literals or at least one placeholder.
    pub fn overlaps(&self, other: &PathTemplate) -> bool {
        self.segment_by_segment(other, |_, _| true)
    }

    /// Two templates have the same shape when they differ only in placeholder names
    /// and kinds: no request could tell them apart.
    pub fn same_shape(&self, other: &PathTemplate) -> bool {
        self.segment_by_segment(other, |a, b| a.is_placeholder() && b.is_placeholder())
    }

    /// Same length, equal literals where both have one, and `otherwise` where either
    /// has a placeholder.
    fn segment_by_segment(
        &self,
        other: &PathTemplate,
        otherwise: fn(&TemplateSegment, &TemplateSegment) -> bool,
    ) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (TemplateSegment::Literal(a), TemplateSegment::Literal(b)) => a == b,
                    (a, b) => otherwise(a, b),
                })
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                TemplateSegment::Literal(text) => write!(f, "/{text}")?,
                TemplateSegment::Channel => write!(f, "/{{{CHANNEL_PLACEHOLDER}}}")?,
                TemplateSegment::SelfId => write!(f, "/{{{SELF_PLACEHOLDER}}}")?,
                TemplateSegment::Any(name) => write!(f, "/{{{name}}}")?,
            }
        }
        Ok(())
    }
}

fn placeholder_name(segment: &TemplateSegment) -> Option<&str> {
    match segment {
        TemplateSegment::Literal(_) => None,
        TemplateSegment::Channel => Some(CHANNEL_PLACEHOLDER),
        TemplateSegment::SelfId => Some(SELF_PLACEHOLDER),
        TemplateSegment::Any(name) => Some(name),
    }
}

fn parse_segment(raw: &str) -> Option<TemplateSegment> {
    if let Some(name) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return valid_name.then(|| match name {
            CHANNEL_PLACEHOLDER => TemplateSegment::Channel,
            SELF_PLACEHOLDER => TemplateSegment::SelfId,
            other => TemplateSegment::Any(other.into()),
        });
    }
    let valid_literal = raw != "." && raw != ".." && raw.bytes().all(is_pchar_byte);
    valid_literal.then(|| TemplateSegment::Literal(raw.into()))
}

/// RFC 3986 `pchar` without percent-encoding: unreserved, sub-delims, ':' and '@'.
pub(crate) fn is_pchar_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_with_channel_and_any_placeholders_parses() {
        let template = PathTemplate::parse("/api/v1/channels/{channel}/messages/{message}")
            .expect("valid template");
        assert_eq!(
            template.segments(),
            &[
                TemplateSegment::Literal("api".into()),
                TemplateSegment::Literal("v1".into()),
                TemplateSegment::Literal("channels".into()),
                TemplateSegment::Channel,
                TemplateSegment::Literal("messages".into()),
                TemplateSegment::Any("message".into()),
            ]
        );
        assert_eq!(
            template.to_string(),
            "/api/v1/channels/{channel}/messages/{message}"
        );
    }

    #[test]
    fn template_refuses_relative_empty_dot_and_encoded_segments() {
        for bad in [
            "api",
            "/api//v1",
            "/api/",
            "/api/../x",
            "/api/%2e",
            "/a/{}",
            "/a/{x",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn template_refuses_a_repeated_channel_placeholder() {
        let error = PathTemplate::parse("/a/{channel}/b/{channel}").unwrap_err();
        assert!(matches!(error, TemplateError::RepeatedPlaceholder { .. }));
    }

    #[test]
    fn templates_differing_only_in_placeholder_names_have_the_same_shape() {
        let a = PathTemplate::parse("/kv/{self}/{key}").unwrap();
        let b = PathTemplate::parse("/kv/{owner}/{name}").unwrap();
        let c = PathTemplate::parse("/kv/{self}/keys").unwrap();
        assert!(a.same_shape(&b));
        assert!(!a.same_shape(&c));
        assert!(a.overlaps(&c));
    }
}
