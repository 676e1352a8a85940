//! Loading certificates, private keys and trust anchors from PEM files, with
//! errors that name the setting and the file at fault.

#![forbid(unsafe_code)]

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::RootCertStore;
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// Reads every certificate in the PEM file named by the setting `key`.
pub fn load_chain(key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(key, path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Config(format!(
                "{key} \"{path}\": not a readable PEM certificate file ({})",
                pem_problem(&e)
            ))
        })?;
    if chain.is_empty() {
        return Err(Error::Config(format!(
            "{key} \"{path}\": no certificate (BEGIN CERTIFICATE) found"
        )));
    }
    Ok(chain)
}

/// What is wrong with a PEM text, in words (rustls' own text shows byte
/// arrays and Rust debug output).
pub(crate) fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as Pem;
    match e {
        Pem::MissingSectionEnd { end_marker } => {
            let label = String::from_utf8_lossy(end_marker);
            let label = label.trim().trim_matches('-');
            let label = label.strip_prefix("END ").unwrap_or(label);
            format!("a PEM block has no \"-----END {label}-----\" line")
        }
        Pem::IllegalSectionStart { line } => format!(
            "a broken BEGIN line: \"{}\"",
            String::from_utf8_lossy(line).trim()
        ),
        Pem::Base64Decode(_) => {
            "a PEM block holds something that is not base64 (a damaged or truncated block)".into()
        }
        Pem::NoItemsFound => "no PEM block of the expected kind".into(),
        Pem::SectionTooLarge => "a PEM block is larger than 256 MB".into(),
        other => other.to_string(),
    }
}

/// Reads the first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in the PEM
/// file named by the setting `key`.
pub fn load_key(key: &str, path: &str) -> Result<PrivateKeyDer<'static>> {
    let mut bytes = read(key, path)?;
    let parsed = PrivateKeyDer::from_pem_slice(&bytes);
    // The PEM text is key material: wipe our copy. (The DER key handed to
    // rustls is parsed by aws-lc-rs, whose copy AWS-LC's allocator wipes
    // when it is freed.)
    bytes.zeroize();
    parsed.map_err(|e| {
        Error::Config(format!(
            "{key} \"{path}\": no usable private key (PKCS#8, RSA or EC PEM, unencrypted) found ({})",
            pem_problem(&e)
        ))
    })
}

/// Why a key and a certificate chain cannot be used together.
#[derive(Debug)]
pub enum KeyError {
    /// The key is of a kind that cannot sign here.
    Unusable(rustls::Error),
    /// The key belongs to none of the chain's certificates.
    Mismatch,
    /// The key belongs to the chain's certificate number `.0` (counting
    /// from 1), not to the first: the file lists the chain in the wrong
    /// order.
    WrongOrder(usize),
}

impl KeyError {
    /// The problem in words, naming the two settings and files.
    pub fn describe(
        &self,
        key_setting: &str,
        key_file: &str,
        cert_setting: &str,
        cert_file: &str,
    ) -> String {
        match self {
            KeyError::WrongOrder(n) => format!(
                "{cert_setting} \"{cert_file}\" lists its certificates in the wrong order: {key_setting} \"{key_file}\" belongs to certificate {n} of it, not to the first; put that certificate first, then the CAs that issued it"
            ),
            KeyError::Mismatch => format!(
                "{key_setting} \"{key_file}\" does not fit {cert_setting} \"{cert_file}\" (the key belongs to none of its certificates)"
            ),
            KeyError::Unusable(e) => format!(
                "{key_setting} \"{key_file}\" cannot be used with {cert_setting} \"{cert_file}\" ({e})"
            ),
        }
    }
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Unusable(e) => write!(f, "{e}"),
            KeyError::Mismatch => f.write_str("the key belongs to none of the certificates"),
            KeyError::WrongOrder(n) => write!(
                f,
                "the key belongs to certificate {n} of the chain, not to the first"
            ),
        }
    }
}

/// A certificate chain with its private key, checked to belong together
/// (the key must be the first certificate's). The DER key is wiped once
/// aws-lc-rs has parsed it (AWS-LC keeps its own parsed copy, which its
/// allocator wipes when it is freed).
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    mut key: PrivateKeyDer<'static>,
) -> std::result::Result<rustls::sign::CertifiedKey, KeyError> {
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key);
    key.zeroize();
    let signing = signing.map_err(KeyError::Unusable)?;
    // The key's owner is found with x509-parser, which reads X.509
    // version 1 certificates too (rustls' own check needs webpki, which
    // reads only version 3).
    let spki = signing.public_key().map(|k| k.as_ref().to_vec());
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    let Some(spki) = spki else {
        // A key type whose public half rustls cannot state: nothing to
        // compare (rustls' own check accepts these too).
        return Ok(certified);
    };
    let owner = certified.cert.iter().position(|c| {
        x509_parser::parse_x509_certificate(c)
            .is_ok_and(|(_, x)| x.tbs_certificate.subject_pki.raw == spki.as_slice())
    });
    match owner {
        Some(0) => Ok(certified),
        Some(i) => Err(KeyError::WrongOrder(i + 1)),
        None if x509_parser::parse_x509_certificate(&certified.cert[0]).is_err() => {
            Err(KeyError::Unusable(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            )))
        }
        None => Err(KeyError::Mismatch),
    }
}

/// Trust anchors and the revocation lists that came with them.
#[derive(Clone, Debug)]
pub struct Anchors {
    /// The trusted CA certificates.
    pub roots: RootCertStore,
    /// `X509 CRL` PEM blocks found beside them (in the CA file or directory).
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// SHA-256 fingerprints of the CA certificates as given, so that a
    /// self-signed server certificate listed there is trusted as itself.
    pub fingerprints: Vec<String>,
    /// The trusted CA certificates themselves, for the X.509 version 1
    /// certificates they issue (which webpki cannot check).
    pub cas: Vec<CertificateDer<'static>>,
}

impl Anchors {
    /// Trusts `ca` as an anchor; the error says why it cannot be one.
    pub fn add(&mut self, ca: CertificateDer<'static>) -> std::result::Result<(), rustls::Error> {
        self.roots.add(ca.clone())?;
        self.fingerprints.push(crate::trust::certinfo::sha256(&ca));
        self.cas.push(ca);
        Ok(())
    }

    /// Anchors trusting each of `cas` that can be one (as NSS itself would,
    /// a CA it cannot use is skipped).
    pub fn trusting(cas: impl IntoIterator<Item = CertificateDer<'static>>) -> Anchors {
        let mut anchors = Anchors::of(RootCertStore::empty());
        for ca in cas {
            let _ = anchors.add(ca);
        }
        anchors
    }

    /// Anchors of `roots` alone (the system's, or none).
    pub fn of(roots: RootCertStore) -> Anchors {
        Anchors {
            roots,
            crls: Vec::new(),
            fingerprints: Vec::new(),
            cas: Vec::new(),
        }
    }
}

/// Builds the trust anchors from `tls-ca-cert-file` and/or `tls-ca-cert-dir`,
/// with any CRLs found in the same files. Returns `Ok(None)` when neither is
/// configured.
pub fn load_roots(ca_file: Option<&str>, ca_dir: Option<&str>) -> Result<Option<Anchors>> {
    if ca_file.is_none() && ca_dir.is_none() {
        return Ok(None);
    }
    let mut anchors = Anchors::of(RootCertStore::empty());
    if let Some(path) = ca_file {
        for cert in load_chain("tls-ca-cert-file", path)? {
            anchors.add(cert).map_err(|e| {
                Error::Config(format!(
                    "tls-ca-cert-file \"{path}\": unusable CA certificate ({e})"
                ))
            })?;
        }
        let bytes = read("tls-ca-cert-file", path)?;
        for crl in CertificateRevocationListDer::pem_slice_iter(&bytes) {
            anchors.crls.push(crl.map_err(|e| {
                Error::Config(format!("tls-ca-cert-file \"{path}\": unreadable CRL ({e})"))
            })?);
        }
    }
    if let Some(dir) = ca_dir {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::Config(format!(
                "tls-ca-cert-dir \"{dir}\": cannot read directory ({e})"
            ))
        })?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            // A CA directory holds other files too (hash links to the same
            // certificates, READMEs); take the certificates and CRLs it has.
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            for cert in CertificateDer::pem_slice_iter(&bytes).flatten() {
                let _ = anchors.add(cert);
            }
            anchors
                .crls
                .extend(CertificateRevocationListDer::pem_slice_iter(&bytes).flatten());
        }
    }
    if anchors.roots.is_empty() {
        let what = match (ca_file, ca_dir) {
            (Some(f), Some(d)) => format!("tls-ca-cert-file \"{f}\" and tls-ca-cert-dir \"{d}\""),
            (Some(f), None) => format!("tls-ca-cert-file \"{f}\""),
            (None, Some(d)) => format!("tls-ca-cert-dir \"{d}\""),
            (None, None) => unreachable!("checked above"),
        };
        return Err(Error::Config(format!(
            "{what}: no usable CA certificate found"
        )));
    }
    Ok(Some(anchors))
}

/// The operating system's trust anchors (Debian: /etc/ssl/certs).
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    roots
}

fn read(key: &str, path: &str) -> Result<Vec<u8>> {
    std::fs::read(Path::new(path))
        .map_err(|e| Error::Config(format!("{key} \"{path}\": cannot read ({e})")))
}

#[cfg(test)]
mod key_tests {
    use super::*;

    fn issued() -> (
        CertificateDer<'static>,
        CertificateDer<'static>,
        PrivateKeyDer<'static>,
    ) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let key = PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        (leaf.der().clone(), ca.der().clone(), key)
    }

    #[test]
    fn a_chain_in_the_wrong_order_is_named_as_such() {
        let (leaf, ca, key) = issued();
        assert!(certified_key(vec![leaf.clone(), ca.clone()], key.clone_key()).is_ok());
        match certified_key(vec![ca.clone(), leaf.clone()], key.clone_key()) {
            Err(KeyError::WrongOrder(2)) => {}
            other => panic!("expected WrongOrder(2), got {other:?}"),
        }
        let (_, _, other_key) = issued();
        match certified_key(vec![leaf, ca], other_key) {
            Err(KeyError::Mismatch) => {}
            other => panic!("expected Mismatch, got {other:?}"),
        }
        let text = KeyError::WrongOrder(2).describe("tls-key-file", "/k", "tls-cert-file", "/c");
        assert!(
            text.contains("wrong order") && !text.contains("does not fit"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_told_in_words() {
        let dir = tempfile::tempdir().unwrap();
        for (text, words) in [
            (
                "-----BEGIN CERTIFICATE-----\nAAAA!!\n-----END CERTIFICATE-----\n",
                "not base64",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n",
                "no \"-----END CERTIFICATE-----\" line",
            ),
        ] {
            let path = dir.path().join("bad.pem");
            std::fs::write(&path, text).unwrap();
            let e = load_chain("tls-cert-file", path.to_str().unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(words), "{e}");
            assert!(!e.contains('[') && !e.contains("InvalidCharacter"), "{e}");
        }
    }
}
