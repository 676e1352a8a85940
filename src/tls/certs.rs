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
                "{key} \"{path}\": not a readable PEM certificate file ({e})"
            ))
        })?;
    if chain.is_empty() {
        return Err(Error::Config(format!(
            "{key} \"{path}\": no certificate (BEGIN CERTIFICATE) found"
        )));
    }
    Ok(chain)
}

/// Reads the first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in the PEM
/// file named by the setting `key`.
pub fn load_key(key: &str, path: &str) -> Result<PrivateKeyDer<'static>> {
    let mut bytes = read(key, path)?;
    let parsed = PrivateKeyDer::from_pem_slice(&bytes);
    // The PEM text is key material: wipe our copy. (The DER key handed to
    // rustls is parsed by ring, which keeps its own copy and does not wipe
    // it on drop; that is outside this library.)
    bytes.zeroize();
    parsed.map_err(|e| {
        Error::Config(format!(
            "{key} \"{path}\": no usable private key (PKCS#8, RSA or EC PEM, unencrypted) found ({e})"
        ))
    })
}

/// A certificate chain with its private key, checked to belong together.
/// The DER key is wiped once ring has parsed it (ring keeps its own parsed
/// copy, which it does not wipe: that is beyond this library).
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    mut key: PrivateKeyDer<'static>,
) -> std::result::Result<rustls::sign::CertifiedKey, rustls::Error> {
    let signing = rustls::crypto::ring::sign::any_supported_type(&key);
    key.zeroize();
    let certified = rustls::sign::CertifiedKey::new(chain, signing?);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(e) => Err(e),
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
}

/// Builds the trust anchors from `tls-ca-cert-file` and/or `tls-ca-cert-dir`,
/// with any CRLs found in the same files. Returns `Ok(None)` when neither is
/// configured.
pub fn load_roots(ca_file: Option<&str>, ca_dir: Option<&str>) -> Result<Option<Anchors>> {
    if ca_file.is_none() && ca_dir.is_none() {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    let mut crls = Vec::new();
    let mut fingerprints = Vec::new();
    if let Some(path) = ca_file {
        for cert in load_chain("tls-ca-cert-file", path)? {
            fingerprints.push(crate::trust::certinfo::sha256(&cert));
            roots.add(cert).map_err(|e| {
                Error::Config(format!(
                    "tls-ca-cert-file \"{path}\": unusable CA certificate ({e})"
                ))
            })?;
        }
        let bytes = read("tls-ca-cert-file", path)?;
        for crl in CertificateRevocationListDer::pem_slice_iter(&bytes) {
            crls.push(crl.map_err(|e| {
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
                fingerprints.push(crate::trust::certinfo::sha256(&cert));
                let _ = roots.add(cert);
            }
            crls.extend(CertificateRevocationListDer::pem_slice_iter(&bytes).flatten());
        }
    }
    if roots.is_empty() {
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
    Ok(Some(Anchors {
        roots,
        crls,
        fingerprints,
    }))
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
