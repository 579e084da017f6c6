//! Quantities read as the API server reads them: a few hundred generated quantities (every
//! suffix and exponent form, long mantissas, odd spellings) are put to the API server's
//! own CEL (`quantity(text).compareTo(quantity(reading)) == 0`) and stored in a
//! ResourceList, and each answer is compared with the operator's reading.

use k8s_openapi::api::core::v1::{ConfigMap, ResourceQuota};
use kube::api::Api;
use plugin_operator::api::quantity::{self, Amount};
use plugin_operator_test_support::cluster::{
    NamespacePolicy, TestNamespace, client, dry_run, together,
};
use serde_json::json;

/// A small deterministic generator: the same quantities on every run.
struct Generator(u64);

impl Generator {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }

    /// Up to `most` digits (fewer at random).
    fn digits(&mut self, most: u64) -> String {
        let count = self.next(most + 1);
        (0..count)
            .map(|_| char::from(b'0' + self.next(10) as u8))
            .collect()
    }

    /// A quantity of any form the API server might meet: plain, fractional, with every
    /// suffix and exponent, long mantissas, leading zeros and odd spellings.
    fn quantity(&mut self) -> String {
        const SUFFIXES: &[&str] = &[
            "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ];
        let whole = self.digits(21);
        let fraction = match self.next(3) {
            0 => String::new(),
            1 => format!(".{}", self.digits(13)),
            _ => format!(".{}", self.digits(3)),
        };
        let suffix = match self.next(5) {
            0 => {
                let sign = ["", "-", "+"][self.next(3) as usize];
                let exponent = self.next(40);
                format!("{}{sign}{exponent}", ["e", "E"][self.next(2) as usize])
            }
            _ => SUFFIXES[self.next(SUFFIXES.len() as u64) as usize].to_string(),
        };
        let sign = if self.next(8) == 0 { "+" } else { "" };
        format!("{sign}{whole}{fraction}{suffix}")
    }
}

/// The exact amount of a canonical form (`<digits><suffix>`, every digit kept), read
/// without the API server's parsing rules: canonical forms of large amounts do not
/// read back through them (the API server would cap `2021589424665184300e18`).
fn exact_canonical(text: &str) -> Option<Amount> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let split = unsigned
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(unsigned.len());
    let (digits, suffix) = unsigned.split_at(split);
    let decimal = |exponent| Amount::from_digits(negative, digits, exponent);
    let binary = |power: u32| {
        let value: u128 = digits.parse().ok()?;
        let value = value.checked_mul(1u128.checked_shl(power)?)?;
        Amount::from_digits(negative, &value.to_string(), 0)
    };
    const DECIMAL: [&str; 10] = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];
    const BINARY: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if let Some(index) = DECIMAL.iter().position(|s| *s == suffix) {
        return decimal(3 * index as i64 - 9);
    }
    if let Some(index) = BINARY.iter().position(|s| *s == suffix) {
        return binary(10 * (index as u32 + 1));
    }
    decimal(suffix.strip_prefix('e')?.parse().ok()?)
}

/// How the API server stores `text` in a container's requests or a quota (any
/// ResourceList): its canonical form, or the text itself when it needed no rounding.
async fn stored_form(quotas: &Api<ResourceQuota>, text: &str) -> Result<String, String> {
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "reading"},
        "spec": {"hard": {"requests.cpu": text}},
    }))
    .unwrap();
    match quotas.create(&dry_run(), &quota).await {
        Ok(stored) => Ok(stored.spec.unwrap().hard.unwrap()["requests.cpu"].0.clone()),
        Err(error) => Err(error.to_string()),
    }
}

/// Asks the API server's own CEL whether `text` is a quantity and equals `reading`.
async fn cel_verdict(
    config_maps: &Api<ConfigMap>,
    text: &str,
    reading: &str,
) -> Result<(), String> {
    let probe: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "data": {"text": text, "reading": reading},
    }))
    .unwrap();
    config_maps
        .create(&dry_run(), &probe)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

const NOT_A_QUANTITY: &str = "the API server does not read it as a quantity";
const DIFFERENT: &str = "the API server reads a different amount";

fn samples() -> Vec<String> {
    let mut generator = Generator(0x5eed_1234_abcd_0001);
    let mut samples: Vec<String> = (0..300).map(|_| generator.quantity()).collect();
    samples.extend(
        [
            "900000u", "0.9", "9e-1", "0.1n", "1e-100", "10E", "8Ei", "1.5Gi", "1.Ki", ".5", "5.",
            ".", "+", "Ki", "m", "0", "000.000", "1e+3", "1E3", "12e-3", "1mm", "1e", ".Ei", "1Mb",
            "1 m", "", "-1", "-0.1n",
        ]
        .map(String::from),
    );
    samples
}

#[tokio::test]
async fn quantities_read_as_the_api_server_reads_them() {
    let _cluster = together().await;
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-quantities", &[]).await;
    let validations = json!([
        {"expression": "isQuantity(object.data.text)", "message": NOT_A_QUANTITY},
        {"expression": "!isQuantity(object.data.text) || quantity(object.data.text).compareTo(quantity(object.data.reading)) == 0",
         "message": DIFFERENT}
    ]);
    let cel = NamespacePolicy::install(&client, &ns.name, "configmaps", validations).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let not_a_quantity: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "probe"}, "data": {"text": "x", "reading": "0"}
    }))
    .unwrap();
    cel.wait_until_it_refuses(&config_maps, &not_a_quantity)
        .await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns.name);
    let (mut compared, mut disagreements) = (0, vec![]);
    for text in samples() {
        let ours = quantity::parse(&text);
        // Exact: digits and an exponent, a form the API server reads without rounding.
        let reading = ours.as_ref().map(|a| a.to_string()).unwrap_or("0".into());
        match (cel_verdict(&config_maps, &text, &reading).await, &ours) {
            (Ok(()), Ok(_)) => compared += 1,
            (Err(refusal), Err(_)) if refusal.contains(NOT_A_QUANTITY) => continue,
            (verdict, _) => {
                disagreements.push(format!(
                    "{text:?}: operator {ours:?}, API server {verdict:?}"
                ));
                continue;
            }
        }
        // Stored in a ResourceList, it is also rounded up to a thousandth.
        let Ok(amount) = ours else { continue };
        let stored = amount.clone().as_stored_in_a_resource_list();
        match stored_form(&quotas, &text).await {
            // Kept as written: the API server did not need to round it.
            Ok(form) if form == text => {
                if stored != amount {
                    disagreements.push(format!(
                        "{text:?}: kept as written, operator rounds to {stored}"
                    ));
                }
            }
            Ok(form) if exact_canonical(&form).as_ref() != Some(&stored) => disagreements.push(
                format!("{text:?}: stored as {form:?}, operator stores {stored}"),
            ),
            Ok(_) => {}
            Err(refusal) if refusal.contains("must be greater than or equal to 0") => {}
            Err(refusal) => disagreements.push(format!("{text:?}: quota refused: {refusal}")),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(compared >= 250, "only {compared} quantities were compared");
}
