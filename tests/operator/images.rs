//! Image references judged alike by the API server (the CRD's CEL rules) and the
//! operator (`api::image::check`): a few hundred generated references, valid ones and
//! near misses (a character too many or too few, uppercase, spaces and tabs, bad tags
//! and digests, names around the 255-character path limit), each put to the API server
//! in a dry run and compared with the operator's verdict and message.

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use plugin_operator::api::image;
use plugin_operator_test_support::cluster::{dry_run, together};
use serde_json::json;

use crate::namespace_with_crd;

const SHA256: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A small deterministic generator: the same references on every run.
struct Generator(u64);

impl Generator {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[self.next(choices.len())]
    }

    /// A path component: lowercase letters and digits with separators, sometimes wrong.
    fn component(&mut self) -> String {
        let mut text = String::new();
        for _ in 0..=self.next(3) {
            if !text.is_empty() {
                text.push_str(self.pick(&[".", "_", "__", "-", "--"]));
            }
            let length = 1 + self.next(6);
            text.extend((0..length).map(|_| b"abcxyz0189"[self.next(10)] as char));
        }
        text
    }

    fn reference(&mut self) -> String {
        let registry = self.pick(&[
            "",
            "",
            "localhost/",
            "registry.example/",
            "Reg.Example/",
            "registry:5000/",
            "[::1]:5000/",
            "10.0.0.1/",
            "a_b.c/",
            "docker.io/",
            "index.docker.io/",
            "UPPER/",
            "team/",
        ]);
        let path = (0..=self.next(3))
            .map(|_| self.component())
            .collect::<Vec<_>>()
            .join("/");
        let tag = match self.next(4) {
            0 => String::new(),
            1 => ":1.0".into(),
            2 => format!(
                ":{}",
                self.pick(&["latest", "V_2-rc.1", "_x", "a".repeat(128).as_str()])
            ),
            _ => format!(":{}", self.pick(&["", ".x", "-x", "a b", "t\tx"])),
        };
        let digest = match self.next(5) {
            0 => format!("@sha256:{SHA256}"),
            1 => format!(
                "@{}",
                self.pick(&[
                    "sha256:nothex",
                    "sha256:0123",
                    "md5:0123456789abcdef0123456789abcdef",
                    "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                ])
            ),
            _ => String::new(),
        };
        let mut reference = format!("{registry}{path}{tag}{digest}");
        if self.next(3) == 0 {
            self.mutate(&mut reference);
        }
        reference
    }

    /// One character inserted, removed or replaced.
    fn mutate(&mut self, reference: &mut String) {
        let chars: Vec<char> = reference.chars().collect();
        let at = self.next(chars.len() + 1);
        let odd = self
            .pick(&[
                " ", "\t", "/", ":", "@", "_", "-", ".", "A", "é", "[", "]", "%",
            ])
            .to_string();
        let (head, tail) = chars.split_at(at);
        let head: String = head.iter().collect();
        let tail: String = match self.next(3) {
            0 => tail.iter().collect(),
            _ => tail.iter().skip(1).collect(),
        };
        *reference = match self.next(2) {
            0 => format!("{head}{odd}{tail}"),
            _ => format!("{head}{tail}"),
        };
    }
}

/// Hand-picked references, then generated ones.
fn references() -> Vec<String> {
    let long = |n: usize| "a".repeat(n);
    let mut references: Vec<String> = [
        "localhost/sample-plugin:dev",
        "registry:5000/x/y:tag",
        "Reg.Example/W:1",
        "w@sha256:nothex",
        "registry.example/weather\t:1",
        "registry.example/weather:",
        "weather",
        SHA256,
    ]
    .map(String::from)
    .into();
    references.push(format!("ghcr.io/a/b@sha256:{SHA256}"));
    for n in [247, 248] {
        references.push(long(n));
        references.push(format!("docker.io/{}", long(n)));
    }
    for n in [250, 251] {
        references.push(format!("team/{}", long(n)));
    }
    for n in [255, 256] {
        references.push(format!("example.com/{}:1", long(n)));
        references.push(format!("a_b.c/{}", long(n - 6)));
    }
    let mut generator = Generator(0x1a6e_5eed_0000_0013);
    references.extend((0..400).map(|_| generator.reference()));
    references.retain(|r| !r.is_empty() && r.len() <= 512);
    references
}

#[tokio::test]
async fn the_api_server_and_the_operator_judge_image_references_alike() {
    let _cluster = together().await;
    let (client, ns) = namespace_with_crd("op-images").await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "plugins.chat.dev",
        "v1alpha1",
        "Plugin",
    ));
    let plugins: Api<DynamicObject> = Api::namespaced_with(client, &ns.name, &resource);
    let (mut accepted, mut refused, mut disagreements) = (0, 0, vec![]);
    for reference in references() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "plugins.chat.dev/v1alpha1", "kind": "Plugin",
            "metadata": {"name": "probe"},
            "spec": {"image": reference, "port": 8080},
        }))
        .unwrap();
        let theirs = plugins.create(&dry_run(), &object).await;
        match (theirs, image::check(&reference)) {
            (Ok(_), Ok(())) => accepted += 1,
            (Err(kube::Error::Api(status)), Err(problem))
                if status.code == 422 && status.message.contains(&problem.to_string()) =>
            {
                refused += 1
            }
            (theirs, ours) => disagreements.push(format!(
                "{reference:?}: API server {:?}, operator {ours:?}",
                theirs.map(|_| ()).map_err(|e| e.to_string())
            )),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        accepted >= 100 && refused >= 100,
        "too one-sided to prove much: {accepted} accepted, {refused} refused"
    );
    eprintln!("{accepted} accepted and {refused} refused alike");
}
