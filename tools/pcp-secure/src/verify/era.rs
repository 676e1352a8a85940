//! The artefacts of PCP's NSS-era guides (issue 15): X.509 version 1
//! certificates (guide 001's `openssl x509 -req` without `-extfile`) and CA
//! certificates without basicConstraints (guide 000's `certutil -S -x`
//! "Local CA certificate"). The library uses both, within limits (see
//! `src/trust/version1.rs` and `may_issue`), so each is a warning saying
//! what is checked, who else refuses it and how to re-issue it.

use std::collections::BTreeMap;

use pcp_secure::api::trust::{is_version1, sha256, CertInfo};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Version;

use super::Report;

/// The first subject CN of `cert` (`None` without one).
pub(super) fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = X509Certificate::from_der(cert).ok()?;
    let cn = x509
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok().map(str::to_string));
    cn.filter(|cn| !cn.is_empty())
}

/// The subjectAltName entry naming `host` (an IP address or a DNS name).
fn san_entry(host: &str) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() {
        format!("IP:{host}")
    } else {
        format!("DNS:{host}")
    }
}

const VERSION1: &str = "is an X.509 version 1 certificate (no extensions: no subjectAltName, basicConstraints or key usage; guide 001's `openssl x509 -req` without -extfile makes them)";

/// The "server certificate version" warning for a version 1 served
/// certificate: `what` names it (its file, or its database and nickname),
/// `then` says how the re-issued files replace it.
pub(super) fn server_version1(r: &mut Report, cert: &CertificateDer<'_>, what: &str, then: &str) {
    if !is_version1(cert) {
        return;
    }
    let info = CertInfo::of(cert);
    let cn = common_name(cert);
    let host = cn.as_deref().unwrap_or("HOST");
    let named = match &cn {
        Some(cn) => format!("its subject CN \"{cn}\""),
        None => "its subject CN (it has none, so no host name matches)".to_string(),
    };
    r.warn(
        "server certificate version",
        format!(
            "{what} (subject \"{}\") {VERSION1}: pmcd with libpcp_secure serves it, and the library's clients accept it only when a CA they trust signed it directly (no intermediate CAs; its dates and that CA's CRLs are checked) and take its host name from {named} (the CN of a version 3 certificate is never used); TLS clients that read host names only from subjectAltName (web browsers and Go programs on pmproxy's HTTPS, for instance) refuse it",
            info.subject
        ),
        format!(
            "re-issue it as version 3: `pcp-secure cert server {host} --dir DIR` (add every other name clients use after {host}; DIR must hold your CA, ca.crt and ca.key, else make one first with `pcp-secure cert ca --dir DIR` and give clients DIR/ca.crt) writes DIR/server.crt and DIR/server.key, {then}; or sign a new request with the CA that signed this one: openssl x509 -req ... -extfile FILE, FILE holding subjectAltName = {}",
            san_entry(host)
        ),
    );
}

/// The "client certificate version" warning for a version 1 client
/// certificate (`what`, `then` as for [`server_version1`]).
pub(super) fn client_version1(r: &mut Report, cert: &CertificateDer<'_>, what: &str, then: &str) {
    if !is_version1(cert) {
        return;
    }
    let info = CertInfo::of(cert);
    let name = common_name(cert).unwrap_or_else(|| "NAME".to_string());
    r.warn(
        "client certificate version",
        format!(
            "{what} (subject \"{}\") {VERSION1}: clients with libpcp_secure present it, and pmcd with the library (-Q or tls-verify-clients) accepts it only when a CA it trusts signed it directly (no intermediate CAs; its dates and that CA's CRLs are checked)",
            info.subject
        ),
        format!(
            "re-issue it as version 3: `pcp-secure cert client {name} --dir DIR` (DIR holding the CA pmcd trusts for client certificates, ca.crt and ca.key; `pcp-secure cert ca --dir DIR` makes one, which pmcd must then trust) writes DIR/{name}.crt and DIR/{name}.key, {then}; or sign a new request with the CA that signed this one: openssl x509 -req ... -extfile FILE, FILE holding extendedKeyUsage = clientAuth"
        ),
    );
}

/// Whether `cert` is a version 3 certificate without the basicConstraints
/// extension, which the library never takes as an intermediate CA and
/// OpenSSL refuses as any CA.
pub(super) fn lacks_basic_constraints(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, x509)) = X509Certificate::from_der(cert) else {
        return false;
    };
    x509.version() == X509Version::V3 && matches!(x509.basic_constraints(), Ok(None))
}

/// Whether `cert`, found where CAs are kept, is a CA without
/// basicConstraints: a version 3 certificate without that extension and
/// without a subjectAltName (a server's own certificate trusted as itself
/// names its host).
pub(super) fn ca_lacking_basic_constraints(cert: &CertificateDer<'_>) -> bool {
    lacks_basic_constraints(cert)
        && X509Certificate::from_der(cert)
            .is_ok_and(|(_, x509)| matches!(x509.subject_alternative_name(), Ok(None)))
}

/// A certificate used as a CA, and where it was found ("in tls-ca-cert-file
/// \"...\"").
#[derive(Clone)]
pub(super) struct CaUse {
    pub(super) cert: CertificateDer<'static>,
    pub(super) place: String,
    /// The NSS database it is in, for the certutil command of the fix.
    pub(super) database: Option<String>,
}

/// One warning per CA certificate without basicConstraints among `uses`
/// (several places of one certificate on one line).
pub(super) fn basic_constraints(r: &mut Report, uses: Vec<CaUse>) {
    let mut by_cert: BTreeMap<String, (CertificateDer<'static>, Vec<String>, Option<String>)> =
        BTreeMap::new();
    for u in uses {
        let entry = by_cert
            .entry(sha256(&u.cert))
            .or_insert_with(|| (u.cert.clone(), Vec::new(), None));
        if !entry.1.contains(&u.place) {
            entry.1.push(u.place);
        }
        if entry.2.is_none() {
            entry.2 = u.database;
        }
    }
    let mut seen_names: Vec<String> = Vec::new();
    for (cert, places, database) in by_cert.into_values() {
        let info = CertInfo::of(&cert);
        let mut name = format!("CA certificate \"{}\"", info.subject);
        if seen_names.contains(&name) {
            name = format!("{name} ({})", &sha256(&cert)[..16]);
        }
        seen_names.push(name.clone());
        let spec = database.as_deref().unwrap_or("sql:DIR");
        r.warn(
            &name,
            format!(
                "{}: a CA certificate without the basicConstraints extension (certutil -S -x without -2 makes them, as PCP's collector guide does): libpcp_secure accepts it only as a trust anchor (in tls-ca-cert-file, or trusted in an NSS database), never as an intermediate sent in a chain; PCP 6/7 without the library and OpenSSL refuse it as a CA (\"invalid CA certificate\"), so their clients cannot verify the certificates it issued and their pmcd -Q refuses client certificates it issued",
                places.join("; ")
            ),
            format!(
                "make a CA with basicConstraints and re-issue the certificates it signed: `pcp-secure cert ca --dir DIR`, then `pcp-secure cert server HOST... --dir DIR` (and `pcp-secure cert client NAME --dir DIR`); or with certutil: certutil -d {spec} -S -x -n \"NEW CA\" -s \"cn=NEW CA\" -t \"CT,,\" -v 120 -2 (answer y to \"Is this a CA certificate [y/N]?\" and Enter for no path length limit), then certutil -d {spec} -S -c \"NEW CA\" -n NICKNAME -s \"cn=HOST\" -8 HOST,... -t \",,\" -v 120; give clients the new CA (certutil -d {spec} -L -n \"NEW CA\" -a > ca.pem)"
            ),
        );
    }
}
