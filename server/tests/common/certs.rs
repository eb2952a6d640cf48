//! Test certificates minted with rcgen: a CA, and certificates it signs (server or
//! client), as PEM strings or written to files.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::Path;

pub type Ca = CertifiedIssuer<'static, KeyPair>;

/// A self-signed CA named `name`.
pub fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate signed by `ca` for `sans` (a client certificate when `client`, else a
/// server's): (certificate PEM, key PEM, certificate DER).
pub fn leaf(ca: &Ca, cn: &str, sans: &[&str], client: bool) -> (String, String, Vec<u8>) {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages =
        vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// A loopback certificate (127.0.0.1, localhost) signed by `ca`, written to DIR/NAME.pem
/// and DIR/NAME.key: their paths.
pub fn loopback_files(dir: &Path, ca: &Ca, name: &str, client: bool) -> (String, String) {
    let (pem, key, _) = leaf(ca, name, &["127.0.0.1", "localhost"], client);
    let (cp, kp) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cp, pem).unwrap();
    std::fs::write(&kp, key).unwrap();
    (cp.display().to_string(), kp.display().to_string())
}
