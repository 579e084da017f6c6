//! Image references a registry can serve, by the grammar of the distribution
//! project's `reference` package, which the kubelet and containerd parse images with:
//!
//! ```text
//! reference   := name [ ":" tag ] [ "@" digest ]
//! name        := [ domain "/" ] path-component [ "/" path-component ]*
//! domain      := ( domain-name | "[" IPv6 "]" ) [ ":" port ]
//! domain-name := label [ "." label ]*          ; label: letters, digits, inner '-'
//! path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*   ; separator: . _ __ -+
//! tag         := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest      := sha256:<64 hex> | sha384:<96 hex> | sha512:<128 hex>   ; lowercase
//! ```
//!
//! plus two rules of its normalising parser: a bare 64-hex-digit string is an image
//! id, not a name; and the repository path, as normalised (`weather` is
//! `docker.io/library/weather`), is at most 255 characters.
//!
//! One set of rules, used twice: [`cel_rules`] puts them into the CRD, so the API
//! server refuses such an image at admission, and [`check`] applies the same regular
//! expressions in the operator's validate step. The expressions use ASCII classes only,
//! so CEL's RE2 and the `regex` crate read them alike; `tests/operator/images.rs`
//! compares both verdicts on a few hundred references.

use std::sync::LazyLock;

use regex::Regex;

/// The longest repository path, after normalisation.
pub const MAX_PATH_LENGTH: usize = 255;

const FORMAT_MESSAGE: &str = "image must be a reference a registry can serve, [registry[:port]/]repository[:tag][@digest]: the registry a host name or [IPv6] address, the repository lowercase letters and digits separated by '/', '.', '_', '__' or '-', the tag 1 to 128 letters, digits, '_', '.' or '-' not starting with '.' or '-'; no spaces, tabs or other characters";
const DIGEST_MESSAGE: &str = "image digest must be sha256: followed by 64 lowercase hex digits (or sha384: with 96, sha512: with 128)";
const IMAGE_ID_MESSAGE: &str = "image must name a repository, not be a bare 64-hex-digit image id";
const PATH_MESSAGE: &str = "image repository path (the name without its registry; library/<name> for a one-part Docker Hub name) must be at most 255 characters";

/// Why an image reference cannot be pulled; each message is the CRD rule's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageProblem {
    #[error("{FORMAT_MESSAGE}")]
    Format,
    #[error("{DIGEST_MESSAGE}")]
    Digest,
    #[error("{IMAGE_ID_MESSAGE}")]
    ImageId,
    #[error("{PATH_MESSAGE}")]
    PathTooLong,
}

const PATH_COMPONENT: &str = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const DOMAIN_LABEL: &str = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const TAG: &str = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
/// Any digest the grammar allows; [`SUPPORTED_DIGEST`] narrows it to what can be pulled.
const DIGEST: &str = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const SUPPORTED_DIGEST: &str = "@(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$";
const IMAGE_ID: &str = "^[a-f0-9]{64}$";

/// `host[:port]`, a registry.
fn domain() -> String {
    format!(r"(?:{DOMAIN_LABEL}(?:\.{DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
}

/// The name, unanchored at its end: `[domain/]path`.
fn name() -> String {
    format!("(?:{}/)?{PATH_COMPONENT}(?:/{PATH_COMPONENT})*", domain())
}

fn reference() -> String {
    format!("^{}(?::{TAG})?(?:@{DIGEST})?$", name())
}

/// The CRD's rules for `spec.image`, each with the message [`check`] gives.
pub fn cel_rules() -> serde_json::Value {
    let reference = reference();
    let rules = [
        (format!("self.matches('{reference}')"), FORMAT_MESSAGE),
        (
            format!("!self.contains('@') || self.matches('{SUPPORTED_DIGEST}')"),
            DIGEST_MESSAGE,
        ),
        (format!("!self.matches('{IMAGE_ID}')"), IMAGE_ID_MESSAGE),
        (
            format!(
                "!self.matches('{reference}') || ({})",
                cel_path_length_within_limit()
            ),
            PATH_MESSAGE,
        ),
    ];
    rules
        .into_iter()
        .map(|(rule, message)| serde_json::json!({"rule": escape_backslashes(&rule), "message": message}))
        .collect()
}

/// CEL string literals read `\` as an escape: each must be doubled.
fn escape_backslashes(rule: &str) -> String {
    rule.replace('\\', r"\\")
}

/// [`normalized_path_length`] in CEL, for a reference that matches the grammar (CRD
/// rules have no `cel.bind`: the name is found again where it is needed). The first
/// `/` of a reference is always in its name.
fn cel_path_length_within_limit() -> String {
    let name = format!("self.find('^{}')", name());
    let domain = domain();
    format!(
        "!self.contains('/') ? size({name}) + 8 <= {MAX_PATH_LENGTH} \
         : (self.startsWith('localhost/') || self.matches('^[^/]*[.:A-Z]')) && self.matches('^{domain}/') \
         ? size({name}) - self.indexOf('/') - 1 \
           + ((self.startsWith('docker.io/') || self.startsWith('index.docker.io/')) && !{name}.matches('/.*/') ? 8 : 0) <= {MAX_PATH_LENGTH} \
         : size({name}) <= {MAX_PATH_LENGTH}"
    )
}

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| compile(&reference()));
static NAME: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{}", name())));
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{}$", domain())));
static SUPPORTED: LazyLock<Regex> = LazyLock::new(|| compile(SUPPORTED_DIGEST));
static ID: LazyLock<Regex> = LazyLock::new(|| compile(IMAGE_ID));

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the grammar's expressions compile")
}

/// Checks `image` by the same rules as the CRD; the first problem found.
pub fn check(image: &str) -> Result<(), ImageProblem> {
    if ID.is_match(image) {
        return Err(ImageProblem::ImageId);
    }
    if image.contains('@') && !SUPPORTED.is_match(image) {
        return Err(ImageProblem::Digest);
    }
    if !REFERENCE.is_match(image) {
        return Err(ImageProblem::Format);
    }
    let name = NAME.find(image).map_or("", |m| m.as_str());
    if normalized_path_length(name) > MAX_PATH_LENGTH {
        return Err(ImageProblem::PathTooLong);
    }
    Ok(())
}

/// The length of the repository path of `name` (a reference's name, which matches the
/// grammar) once normalised as the kubelet normalises it: the first component is the
/// registry if it is `localhost`, holds a `.` or `:`, or has an uppercase letter, and
/// is a valid registry; Docker Hub's single-component names gain `library/`.
fn normalized_path_length(name: &str) -> usize {
    const LIBRARY: usize = "library/".len();
    let Some((first, rest)) = name.split_once('/') else {
        return name.len() + LIBRARY;
    };
    let looks_like_registry = first == "localhost"
        || first.contains(['.', ':'])
        || first.bytes().any(|b| b.is_ascii_uppercase());
    if !(looks_like_registry && DOMAIN.is_match(first)) {
        return name.len();
    }
    let docker_hub = first == "docker.io" || first == "index.docker.io";
    rest.len()
        + if docker_hub && !rest.contains('/') {
            LIBRARY
        } else {
            0
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_registries_serve_are_accepted() {
        let sha384 = "a".repeat(96);
        let sha512 = "b".repeat(128);
        for image in [
            "localhost/sample-plugin:dev".to_string(),
            format!("ghcr.io/a/b@sha256:{SHA256}"),
            "registry:5000/x/y:tag".into(),
            "weather".into(),
            "library/weather:1.0".into(),
            "Reg.Example/w:1".into(),
            "[::1]:5000/team/weather:v2".into(),
            "10.0.0.1:5000/a__b/c--d/e.f_g:TAG_1.x-y".into(),
            format!("registry.example/weather:1@sha256:{SHA256}"),
            format!("docker.io/weather@sha384:{sha384}"),
            format!("w@sha512:{sha512}"),
            "a".repeat(247),
            format!("example.com/{}", "a".repeat(255)),
            format!("w:{}", "t".repeat(128)),
        ] {
            assert_eq!(check(&image), Ok(()), "{image}");
        }
    }

    #[test]
    fn references_no_registry_can_serve_are_refused_with_their_problem() {
        use ImageProblem::*;
        for (image, problem) in [
            ("Reg.Example/W:1".to_string(), Format),
            ("registry.example/weather :1".into(), Format),
            ("registry.example/weather\t:1".into(), Format),
            (" weather".into(), Format),
            ("weather:".into(), Format),
            ("weather:.1".into(), Format),
            (format!("w:{}", "t".repeat(129)), Format),
            ("registry.example/".into(), Format),
            ("/weather".into(), Format),
            ("a//b".into(), Format),
            ("a/b_".into(), Format),
            ("a___b".into(), Format),
            ("-registry.example/w".into(), Format),
            ("registry.example:port/w".into(), Format),
            ("registry_example.com/W".into(), Format),
            ("wéather".into(), Format),
            ("w@sha256:nothex".into(), Digest),
            (format!("w@sha256:{}", SHA256.to_uppercase()), Digest),
            (format!("w@sha256:{}", &SHA256[1..]), Digest),
            (format!("w@md5:{}", &SHA256[..32]), Digest),
            (format!("w@sha256:{SHA256}@sha256:{SHA256}"), Format),
            (format!("w:1:2@sha256:{SHA256}"), Format),
            (SHA256.into(), ImageId),
            ("a".repeat(248), PathTooLong),
            (format!("docker.io/{}", "a".repeat(248)), PathTooLong),
            (format!("example.com/{}", "a".repeat(256)), PathTooLong),
            (format!("team/{}", "a".repeat(251)), PathTooLong),
        ] {
            assert_eq!(check(&image), Err(problem), "{image:?}");
        }
    }

    #[test]
    fn the_normalized_path_counts_as_the_kubelet_counts_it() {
        assert_eq!(normalized_path_length("weather"), "library/weather".len());
        assert_eq!(normalized_path_length("team/weather"), "team/weather".len());
        assert_eq!(normalized_path_length("docker.io/weather"), 15);
        assert_eq!(normalized_path_length("index.docker.io/a/b"), 3);
        assert_eq!(normalized_path_length("localhost/w"), 1);
        assert_eq!(normalized_path_length("Registry/w"), 1);
        assert_eq!(normalized_path_length("a_b.c/w"), "a_b.c/w".len());
    }

    #[test]
    fn cel_rules_carry_the_messages_check_gives() {
        let rules = cel_rules();
        let messages: Vec<_> = rules
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["message"].as_str().unwrap().to_owned())
            .collect();
        for problem in [
            ImageProblem::Format,
            ImageProblem::Digest,
            ImageProblem::ImageId,
            ImageProblem::PathTooLong,
        ] {
            assert!(messages.contains(&problem.to_string()), "{problem:?}");
        }
        assert!(rules[0]["rule"].as_str().unwrap().contains(r"\\."));
    }
}
