//! X.509 version 1 certificates: what PCP's client-certificate guide makes
//! with `openssl x509 -req` and no `-extfile` (OpenSSL up to 3.1), and what
//! PCP 5 with NSS used without complaint. webpki reads only version 3, so
//! these are checked here, and only as a peer's own certificate.
//!
//! What is checked for a version 1 certificate, which has no extensions
//! (no subjectAltName, basicConstraints, key usage or extended key usage):
//! - It is only ever the end entity (a server's or a client's own
//!   certificate). A version 1 certificate is never taken as a CA.
//! - Its validity dates: outside them it is refused, whatever anyone
//!   answers.
//! - Its issuer: a CA certificate trusted directly (`tls-ca-cert-file` or
//!   `tls-ca-cert-dir`, the CAs of an NSS database, the trust store's CAs)
//!   whose subject is the certificate's issuer and whose key verifies its
//!   signature (RSA of 2048 bits or more with SHA-256/384/512, ECDSA P-256
//!   or P-384, Ed25519; SHA-1 and MD5 are refused). There is no path
//!   through intermediate CAs: the trusted CA must have signed it.
//! - Revocation: refused when a CRL configured beside the CAs, signed by
//!   that CA, lists its serial number.
//! - A server's host name: equal, ignoring case, to its subject CN (an IP
//!   address: the same address). Only for version 1: a version 3
//!   certificate's CN is never looked at.
//! - In the handshake, the peer's signature with the certificate's key.
//!
//! With no trusted issuer a version 1 server certificate is judged like any
//! other from an unknown issuer (the question, `PCP_ALLOW_SERVER_SELF_CERT`,
//! the trust store, an NSS "P" entry), after its dates and, when the issuer
//! was sent or it signed itself, its signature are checked. A version 1
//! client certificate needs a trusted issuer.

#![forbid(unsafe_code)]

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::CertificateError;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Version;

use crate::trust::signature;
use crate::trust::verify::within_dates;

/// Whether `cert` is an X.509 version 1 (or 2) certificate: one without
/// extensions, which webpki cannot read.
pub fn is_version1(cert: &[u8]) -> bool {
    X509Certificate::from_der(cert).is_ok_and(|(_, c)| c.version() != X509Version::V3)
}

fn parse<'a>(cert: &'a [u8]) -> Result<X509Certificate<'a>, rustls::Error> {
    X509Certificate::from_der(cert)
        .map(|(_, c)| c)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

/// Checks a version 1 certificate against the trusted CA certificates
/// `cas` and the CRLs `crls`: its dates, a trusted CA's signature on it,
/// and that no CRL of that CA lists it. Returns the CA's subject.
/// `UnknownIssuer` when no trusted CA has its issuer's name.
pub(crate) fn issued_by_trusted(
    cert: &CertificateDer<'_>,
    cas: &[CertificateDer<'_>],
    crls: &[CertificateRevocationListDer<'_>],
    now: UnixTime,
) -> Result<String, rustls::Error> {
    let x509 = parse(cert)?;
    within_dates(&x509, now)?;
    let mut named = false;
    for ca in cas {
        let Ok((_, ca)) = X509Certificate::from_der(ca) else {
            continue;
        };
        if ca.subject().as_raw() != x509.issuer().as_raw() {
            continue;
        }
        named = true;
        if signature::certificate_signed_by(&x509, &ca).is_err() {
            continue;
        }
        if revoked(&x509, &ca, crls) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        return Ok(ca.subject().to_string());
    }
    Err(rustls::Error::InvalidCertificate(if named {
        CertificateError::BadSignature
    } else {
        CertificateError::UnknownIssuer
    }))
}

/// [`issued_by_trusted`] against trust anchors (their CA certificates and
/// CRLs), as `pcp-secure verify` asks it.
pub fn version1_issuer(
    cert: &CertificateDer<'_>,
    anchors: &crate::tls::certs::Anchors,
    now: UnixTime,
) -> Result<String, rustls::Error> {
    issued_by_trusted(cert, &anchors.cas, &anchors.crls, now)
}

/// Whether a CRL issued and signed by `ca` lists `cert`'s serial number.
fn revoked(
    cert: &X509Certificate<'_>,
    ca: &X509Certificate<'_>,
    crls: &[CertificateRevocationListDer<'_>],
) -> bool {
    crls.iter().any(|crl| {
        let Ok((_, crl)) = x509_parser::parse_x509_crl(crl) else {
            return false;
        };
        crl.issuer().as_raw() == ca.subject().as_raw()
            && signature::check(
                crl.tbs_cert_list.as_ref(),
                &crl.signature_algorithm,
                &crl.signature_value.data,
                ca,
            )
            .is_ok()
            && crl
                .iter_revoked_certificates()
                .any(|r| r.raw_serial() == cert.raw_serial())
    })
}

/// What can be checked of a version 1 certificate from an issuer nobody
/// trusts, before anyone is asked: its dates, and its signature when it
/// signed itself or its issuer's certificate was sent along.
pub(crate) fn check_untrusted(
    cert: &CertificateDer<'_>,
    sent: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let x509 = parse(cert)?;
    within_dates(&x509, now)?;
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadSignature);
    if x509.subject().as_raw() == x509.issuer().as_raw() {
        return signature::certificate_signed_by(&x509, &x509).map_err(|_| bad());
    }
    let issuers: Vec<X509Certificate<'_>> = sent
        .iter()
        .filter_map(|c| X509Certificate::from_der(c).ok().map(|(_, c)| c))
        .filter(|c| c.subject().as_raw() == x509.issuer().as_raw())
        .collect();
    if issuers.is_empty() {
        return Ok(());
    }
    if issuers
        .iter()
        .any(|issuer| signature::certificate_signed_by(&x509, issuer).is_ok())
    {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Whether a version 1 server certificate names `server_name` in its
/// subject CN.
pub(crate) fn name_check(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    let x509 = parse(cert)?;
    let matches = |cn: &str| match server_name {
        ServerName::DnsName(dns) => cn.eq_ignore_ascii_case(dns.as_ref()),
        ServerName::IpAddress(ip) => cn
            .parse::<std::net::IpAddr>()
            .is_ok_and(|cn| cn == std::net::IpAddr::from(*ip)),
        _ => false,
    };
    if common_names(&x509).iter().any(|cn| matches(cn)) {
        Ok(())
    } else {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ))
    }
}

fn common_names(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect()
}

/// Which side a version 1 certificate was used for, for the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A server's certificate, of the host named.
    Server,
    /// A client's certificate.
    Client,
}

/// The one warning each use of a version 1 certificate logs: which
/// certificate (`what`: where it comes from, e.g. "the server certificate
/// of host pmserver"), what was checked, and how to re-issue it as
/// version 3. `None` for any certificate that is not version 1 (or 2).
pub(crate) fn warning(cert: &[u8], what: &str, role: Role) -> Option<String> {
    let (_, c) = X509Certificate::from_der(cert).ok()?;
    if c.version() == X509Version::V3 {
        return None;
    }
    let subject = c.subject().to_string();
    let cn = common_names(&c)
        .into_iter()
        .next()
        .filter(|cn| !cn.is_empty())
        .unwrap_or_else(|| "NAME".to_string());
    let (checked, reissue) = match role {
        Role::Server => (
            "its host name is taken from the subject CN",
            format!("pcp-secure cert server {cn} --dir DIR"),
        ),
        Role::Client => (
            "it carries no key usage",
            format!("pcp-secure cert client {cn} --dir DIR"),
        ),
    };
    Some(format!(
        "{what} (subject \"{subject}\") is an X.509 version 1 certificate (no extensions): {checked}; re-issue it as version 3 (`{reissue}`, or openssl x509 -req ... -extfile with subjectAltName/extendedKeyUsage)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// A CA made by rcgen, written as PEM (certificate and key) into `dir`.
    struct Ca {
        cert: rcgen::Certificate,
        key: rcgen::KeyPair,
    }

    fn ca(dir: &Path, name: &str, cn: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        Ca { cert, key }
    }

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (scripts/install-deps installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A version 1 certificate for CN=`cn` signed by the CA `ca` (files in
    /// `dir`), as guide 001's commands make one: no extensions.
    fn version1_leaf(dir: &Path, ca: &str, cn: &str) -> CertificateDer<'static> {
        std::fs::write(dir.join("v1.cnf"), "[req]\ndistinguished_name = dn\n[dn]\n").unwrap();
        openssl(dir, &["genrsa", "-out", "leaf.key", "2048"]);
        let subject = format!("/CN={cn}");
        openssl(
            dir,
            &[
                "req", "-new", "-key", "leaf.key", "-out", "leaf.csr", "-subj", &subject,
            ],
        );
        let (crt, key) = (format!("{ca}.crt"), format!("{ca}.key"));
        openssl(
            dir,
            &[
                "req", "-config", "v1.cnf", "-x509", "-x509v1", "-in", "leaf.csr", "-CA", &crt,
                "-CAkey", &key, "-out", "leaf.crt", "-days", "30", "-sha256",
            ],
        );
        let pem = std::fs::read(dir.join("leaf.crt")).unwrap();
        use rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        assert!(is_version1(&der), "openssl made a version 3 certificate");
        der
    }

    fn at(cert: &CertificateDer<'_>, pick: impl Fn(&X509Certificate<'_>) -> i64) -> UnixTime {
        let (_, x509) = X509Certificate::from_der(cert).unwrap();
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(pick(&x509)).unwrap(),
        ))
    }

    fn kind(r: Result<impl std::fmt::Debug, rustls::Error>) -> CertificateError {
        match r {
            Err(rustls::Error::InvalidCertificate(e)) => e,
            other => panic!("expected an invalid-certificate error, got {other:?}"),
        }
    }

    #[test]
    fn version3_certificates_are_not_version1() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(!is_version1(cert.der()));
        assert!(!is_version1(b"garbage"));
        assert_eq!(warning(cert.der(), "x", Role::Server), None);
    }

    // Each thing checked for a version 1 certificate refuses it on its own:
    // dates, the trusted CA's signature (not just its name), revocation by
    // that CA's CRL; and a version 1 certificate never links a chain.
    #[test]
    fn each_check_refuses_a_version1_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let root = ca(dir.path(), "root", "myCA");
        let namesake = ca(dir.path(), "namesake", "myCA");
        let leaf = version1_leaf(dir.path(), "root", "localhost");
        let cas = [root.cert.der().clone()];
        let now = UnixTime::now();
        assert_eq!(issued_by_trusted(&leaf, &cas, &[], now).unwrap(), "CN=myCA");
        let after = at(&leaf, |c| c.validity().not_after.timestamp() + 1);
        assert_eq!(
            kind(issued_by_trusted(&leaf, &cas, &[], after)),
            CertificateError::Expired
        );
        let before = at(&leaf, |c| c.validity().not_before.timestamp() - 1);
        assert_eq!(
            kind(issued_by_trusted(&leaf, &cas, &[], before)),
            CertificateError::NotValidYet
        );
        assert_eq!(
            kind(issued_by_trusted(
                &leaf,
                &[namesake.cert.der().clone()],
                &[],
                now
            )),
            CertificateError::BadSignature
        );
        assert_eq!(
            kind(issued_by_trusted(&leaf, &[], &[], now)),
            CertificateError::UnknownIssuer
        );
        let mut tampered = leaf.to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            kind(issued_by_trusted(
                &CertificateDer::from(tampered),
                &cas,
                &[],
                now
            )),
            CertificateError::BadSignature
        );

        let (_, x509) = X509Certificate::from_der(&leaf).unwrap();
        let crl = |signer: &Ca| {
            rcgen::CertificateRevocationListParams {
                this_update: rcgen::date_time_ymd(2020, 1, 1),
                next_update: rcgen::date_time_ymd(2999, 1, 1),
                crl_number: rcgen::SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: vec![rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(x509.raw_serial()),
                    revocation_time: rcgen::date_time_ymd(2020, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                }],
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            }
            .signed_by(&signer.cert, &signer.key)
            .unwrap()
            .der()
            .clone()
        };
        assert_eq!(
            kind(issued_by_trusted(&leaf, &cas, &[crl(&root)], now)),
            CertificateError::Revoked
        );
        // A CRL the CA did not sign revokes nothing.
        assert!(issued_by_trusted(&leaf, &cas, &[crl(&namesake)], now).is_ok());

        // Untrusted: dates, and the signature of the issuer when sent.
        assert!(check_untrusted(&leaf, &[], now).is_ok());
        assert!(check_untrusted(&leaf, &cas, now).is_ok());
        assert_eq!(
            kind(check_untrusted(&leaf, &[namesake.cert.der().clone()], now)),
            CertificateError::BadSignature
        );
        assert_eq!(
            kind(check_untrusted(&leaf, &[], after)),
            CertificateError::Expired
        );

        assert!(!crate::trust::verify::may_issue(&leaf));
        assert!(crate::trust::verify::may_issue(root.cert.der()));
    }

    // The host name of a version 1 certificate is its subject CN: DNS names
    // ignoring case, IP addresses as addresses.
    #[test]
    fn the_subject_cn_names_the_host() {
        let dir = tempfile::tempdir().unwrap();
        ca(dir.path(), "root", "myCA");
        let leaf = version1_leaf(dir.path(), "root", "LocalHost");
        let name = |n: &str| ServerName::try_from(n.to_string()).unwrap();
        assert!(name_check(&leaf, &name("localhost")).is_ok());
        assert_eq!(
            kind(name_check(&leaf, &name("other"))),
            CertificateError::NotValidForName
        );
        assert_eq!(
            kind(name_check(&leaf, &name("127.0.0.1"))),
            CertificateError::NotValidForName
        );
        let ip = version1_leaf(dir.path(), "root", "127.0.0.1");
        assert!(name_check(&ip, &name("127.0.0.1")).is_ok());
        assert!(name_check(&ip, &name("::1")).is_err());
        let text = warning(&leaf, "tls-cert-file \"/x\"", Role::Server).unwrap();
        assert!(
            text.contains("CN=LocalHost") && text.contains("pcp-secure cert server LocalHost"),
            "{text}"
        );
    }
}
