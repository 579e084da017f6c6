//! A throwaway certificate authority for the tests of TLS to the chat API: a CA, and
//! server certificates it signs for the names a test serves under. Made in memory, so
//! the tests need no tool to make certificates.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA that signs server certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate (PEM): what a broker is given to trust.
    pub cert_pem: String,
}

/// A server certificate (PEM) and its private key (PEM, PKCS#8).
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA with its own key, named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a key pair");
        let cert_pem = params.self_signed(&key).expect("a CA certificate").pem();
        Self {
            issuer: Issuer::new(params, key),
            cert_pem,
        }
    }

    /// A certificate for serving TLS under `names` (DNS names or IP addresses), signed
    /// by this CA.
    pub fn server_cert(&self, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("valid names");
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("a key pair");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
