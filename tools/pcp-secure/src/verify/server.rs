//! The collector: pmcd's certificate, key, chain, validity and host names, as pmcd would build them.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcp_secure::api::certs;
use pcp_secure::api::certs::ServerContext;
use pcp_secure::api::settings::TlsConf;
use pcp_secure::api::trust::CertInfo;
use pcp_secure::api::trust::{
    chain_cas, is_name_mismatch, is_untrusted_issuer, is_version1, version1_issuer,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::CertificateError;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

// ---------------------------------------------------------------------------
// Server (pmcd)

/// Where the server certificate comes from: what the shared checks (chain,
/// validity, host names) need besides the certificate itself.
pub(super) struct Served {
    /// The certificate pmcd would send, then the certificates that may
    /// complete its chain.
    pub(super) chain: Vec<CertificateDer<'static>>,
    /// The files or database it comes from.
    pub(super) source: CertSource,
    /// What the chain is judged against when tls.conf names no CA.
    pub(super) anchors: ChainAnchors,
    /// How many CAs the server's NSS database trusts to issue client
    /// certificates (`None` for PEM files).
    pub(super) db_client_cas: Option<usize>,
    /// The certificates used as CAs beside it (sent in its chain, trusted
    /// in its database), for the basicConstraints check.
    pub(super) ca_uses: Vec<era::CaUse>,
}

/// The origin of the server certificate, for the fixes.
pub(super) enum CertSource {
    /// tls-cert-file (this file) and tls-key-file.
    Pem { file: String },
    /// tls-nssdb and tls-cert-nickname.
    Nss { spec: String, nickname: String },
}

impl CertSource {
    /// What to do about a certificate outside its validity period.
    fn renew(&self, conf_name: &str) -> String {
        match self {
            CertSource::Pem { .. } => format!(
                "issue a new certificate (`pcp-secure cert`) and point tls-cert-file in {conf_name} at it"
            ),
            CertSource::Nss { spec, nickname } => format!(
                "issue a new certificate and put it with its key into \"{spec}\" as \"{nickname}\" (certutil -S or pk12util -i FILE.p12 -d {spec}), or issue one with `pcp-secure cert` and use tls-cert-file instead of tls-nssdb in {conf_name}"
            ),
        }
    }

    /// What to do when the certificate does not chain to the trusted CAs.
    fn chain_fix(&self) -> String {
        match self {
            CertSource::Pem { .. } => "put the issuing CA into tls-ca-cert-file (and the clients' tls.conf), and intermediates after the certificate in tls-cert-file".into(),
            CertSource::Nss { spec, .. } => format!(
                "import the issuing CA and any intermediates into \"{spec}\" (certutil -A -d {spec} -t \"CT,,\" -n NAME -i CA.pem) and give your clients that CA"
            ),
        }
    }
}

/// The trust anchors for the chain check when tls.conf sets neither
/// tls-ca-cert-file nor tls-ca-cert-dir.
pub(super) enum ChainAnchors {
    /// The system trust store.
    System,
    /// The CAs an NSS database trusts (the system store when empty), and
    /// the database for messages.
    Database(Vec<CertificateDer<'static>>, String),
    /// Unknown (a database that could not be unlocked): no chain check.
    Unknown,
}

pub(super) fn server(
    r: &mut Report,
    conf: &TlsConf,
    conf_name: &str,
    hosts: &[String],
    explicit: bool,
    user: &nss::ServiceUser,
) {
    let served = served_checks(r, conf, conf_name, hosts, explicit, user);
    ca_certificates(r, conf, served.as_ref());
}

/// The checks of the served certificate; it, when there is one to check.
fn served_checks(
    r: &mut Report,
    conf: &TlsConf,
    conf_name: &str,
    hosts: &[String],
    explicit: bool,
    user: &nss::ServiceUser,
) -> Option<Served> {
    let served = match (&conf.cert_file, &conf.nssdb) {
        (Some(file), Some(spec)) => {
            r.fail(
                "server certificate",
                format!("tls-cert-file \"{file}\" and tls-nssdb \"{spec}\" are both set in {conf_name}: pmcd refuses both and serves plain connections only"),
                format!("keep one in {conf_name}: remove tls-cert-file and tls-key-file to use the NSS database, or tls-nssdb to use the PEM files"),
            );
            return None;
        }
        (None, Some(spec)) => nss::server(r, conf, conf_name, spec, user),
        (Some(file), None) => pem_server(r, conf, conf_name, file, user),
        (None, None) => {
            r.warn(
                "server certificate",
                format!("no tls-cert-file or tls-nssdb in {conf_name}: pmcd serves plain connections only"),
                format!(
                    "set tls-cert-file and tls-key-file in {conf_name} (`pcp-secure cert server HOST` makes them), or tls-nssdb"
                ),
            );
            return None;
        }
    }?;
    let (what, then) = match &served.source {
        CertSource::Pem { file } => (
            format!("tls-cert-file \"{file}\""),
            format!("then point tls-cert-file and tls-key-file in {conf_name} at them"),
        ),
        CertSource::Nss { spec, nickname } => (
            format!("\"{nickname}\" in \"{spec}\""),
            format!("then name them with tls-cert-file and tls-key-file instead of tls-nssdb in {conf_name}, or import them into the database under a new nickname (openssl pkcs12 -export -in DIR/server.crt -inkey DIR/server.key -name NICKNAME -out FILE.p12, then pk12util -i FILE.p12 -d {spec}) and set tls-cert-nickname = NICKNAME"),
        ),
    };
    era::server_version1(r, &served.chain[0], &what, &then);
    server_chain(r, conf, &served);
    validity(
        r,
        "server certificate validity",
        &served.chain[0],
        &served.source.renew(conf_name),
    );
    for host in hosts {
        host_name(r, &served.chain[0], host, explicit);
    }
    if conf.verify_clients()
        && conf.ca_cert_file.is_none()
        && conf.ca_cert_dir.is_none()
        && served.db_client_cas.unwrap_or(0) == 0
    {
        let (detail, fix) = match &served.source {
            CertSource::Pem { .. } => (
                "tls-verify-clients is set but neither tls-ca-cert-file nor tls-ca-cert-dir: client certificates are checked against the system trust store".to_string(),
                format!("set tls-ca-cert-file in {conf_name} to the CA that issues your client certificates"),
            ),
            CertSource::Nss { spec, .. } => (
                format!("tls-verify-clients is set but neither tls-ca-cert-file nor tls-ca-cert-dir, and \"{spec}\" trusts no CA for client certificates: they are checked against the system trust store"),
                format!("trust the CA of your client certificates in \"{spec}\" (certutil -M -d {spec} -n NAME -t \"CT,,\"), or set tls-ca-cert-file in {conf_name}"),
            ),
        };
        r.warn("client certificates", detail, fix);
    }
    Some(served)
}

/// The CA certificates the collector's setup uses (sent in the served
/// chain, trusted in its NSS database, in tls-ca-cert-file, which the
/// clients of this tls.conf use too): a warning for each without
/// basicConstraints.
fn ca_certificates(r: &mut Report, conf: &TlsConf, served: Option<&Served>) {
    let mut uses: Vec<era::CaUse> = Vec::new();
    if let Some(served) = served {
        uses.extend(served.ca_uses.iter().cloned());
    }
    if let Some(file) = conf.ca_cert_file.as_deref() {
        if let Ok(cas) = certs::load_chain("tls-ca-cert-file", file) {
            let leaf = served.map(|s| &s.chain[0]);
            uses.extend(
                cas.into_iter()
                    .filter(|c| Some(c) != leaf && era::ca_lacking_basic_constraints(c))
                    .map(|cert| era::CaUse {
                        cert,
                        place: format!("in tls-ca-cert-file \"{file}\""),
                        database: None,
                    }),
            );
        }
    }
    era::basic_constraints(r, uses);
}

/// The PEM half of the server checks: tls-cert-file, tls-key-file and the
/// context pmcd would build from them, read as `user` (pmcd drops to its
/// user before it sets TLS up, so a file only root can read leaves it
/// serving plain connections).
pub(super) fn pem_server(
    r: &mut Report,
    conf: &TlsConf,
    conf_name: &str,
    cert_file: &str,
    user: &nss::ServiceUser,
) -> Option<Served> {
    if !readable_or_warn(r, "server certificate", "tls-cert-file", cert_file) {
        return None;
    }
    let mut readable = readable_as(r, user, "tls-cert-file", cert_file);
    if let Some(ca) = conf.ca_cert_file.as_deref() {
        readable &= readable_as(r, user, "tls-ca-cert-file", ca);
    }
    let chain = match certs::load_chain("tls-cert-file", cert_file) {
        Ok(chain) => chain,
        Err(e) => {
            r.fail(
                "server certificate",
                e.to_string(),
                format!("point tls-cert-file in {conf_name} at a readable PEM certificate file (the server's certificate first)"),
            );
            return None;
        }
    };
    let info = CertInfo::of(&chain[0]);
    r.ok(
        "server certificate",
        format!(
            "\"{cert_file}\": {}, issued by {}{}",
            info.subject,
            info.issuer,
            match chain.len() {
                1 => String::new(),
                n => format!(" ({n} certificates in the chain)"),
            }
        ),
    );

    let mut keys_readable = true;
    let key_ok = match conf.key_file.as_deref() {
        None => {
            r.fail(
                "server key",
                "tls-key-file is not set",
                format!("set tls-key-file in {conf_name} to the private key of \"{cert_file}\""),
            );
            false
        }
        Some(key_file) => {
            let readable = readable_or_warn(r, "server key", "tls-key-file", key_file);
            if readable {
                keys_readable = readable_as(r, user, "tls-key-file", key_file);
                key_mode(
                    r,
                    "server key permissions",
                    key_file,
                    0o007,
                    "chmod 600 (or 640 with group pcp)",
                );
            }
            readable
        }
    };
    if key_ok && readable && keys_readable {
        // As pmcd's user when we can act as it; else (not root) as we are.
        let built = nss::as_user(user, || ServerContext::build(conf).map(drop))
            .unwrap_or_else(|_| ServerContext::build(conf).map(drop));
        server_setup(r, built, conf_name);
    } else if key_ok {
        r.fail(
            "server TLS setup",
            format!("pmcd, running as user {}, cannot read the files named above: although {conf_name} configures TLS, it would serve plain connections only (pmcd.feature.secure 0, and a pcp_secure error in pmcd.log)", user.name),
            "make the files readable by that user as shown above, then restart pmcd",
        );
    }
    Some(Served {
        ca_uses: chain[1..]
            .iter()
            .filter(|c| era::lacks_basic_constraints(c))
            .map(|c| era::CaUse {
                cert: c.clone(),
                place: format!("sent after the server certificate in tls-cert-file \"{cert_file}\" (as an NSS pmcd sends the CA with its own)"),
                database: None,
            })
            .collect(),
        chain,
        source: CertSource::Pem {
            file: cert_file.to_string(),
        },
        anchors: ChainAnchors::System,
        db_client_cas: None,
    })
}

/// The "server TLS setup" line: whether `ServerContext::build` succeeded.
pub(super) fn server_setup(r: &mut Report, built: pcp_secure::api::Result<()>, conf_name: &str) {
    match built {
        Ok(()) => r.ok(
            "server TLS setup",
            "the key fits the certificate; pmcd with libpcp_secure can serve TLS with these settings",
        ),
        Err(e) => r.fail(
            "server TLS setup",
            e.to_string(),
            format!("correct the setting named here in {conf_name}; pmcd would serve plain connections only"),
        ),
    }
}

/// Whether `user` (pmcd's) can open `path` (named by tls.conf's `key`),
/// tried as that user: a FAIL line naming the file, its owner and mode, or
/// the directory in the way, and the fix, when it cannot. True when it
/// can, or when this process can act neither as that user nor as root
/// (then the other checks tell).
pub(super) fn readable_as(r: &mut Report, user: &nss::ServiceUser, key: &str, path: &str) -> bool {
    let name = format!("{key} readable by {}", user.name);
    let opened = nss::as_user(user, || fs::File::open(path).map(drop));
    let Ok(opened) = opened else {
        return true;
    };
    let who = format!("{} (uid {}), the user pmcd runs as", user.name, user.uid);
    match opened {
        Ok(()) => {
            r.ok(&name, format!("{key} \"{path}\" is readable by {who}"));
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => {
            let blocked = nss::as_user(user, || blocking_directory(path))
                .ok()
                .flatten();
            let (detail, fix) = match blocked {
                Some(dir) => (
                    format!("{key} \"{path}\" cannot be opened by {who}: its directory \"{dir}\" is not searchable by that user ({e})"),
                    format!("let {} into \"{dir}\" (chgrp {} \"{dir}\" && chmod g+x \"{dir}\"), then restart pmcd", user.name, pcp_secure::api::nssdb::password::group_name(user.gid), ),
                ),
                None => {
                    let owner = fs::metadata(path)
                        .map(|m| format!("owner uid {}, group gid {}, mode {:04o}", m.uid(), m.gid(), m.mode() & 0o7777))
                        .unwrap_or_default();
                    let chmod = if key == "tls-key-file" { "0640" } else { "0644" };
                    (
                        format!("{key} \"{path}\" is not readable by {who} ({owner}; {e})"),
                        format!("chgrp {} \"{path}\" && chmod {chmod} \"{path}\" (`pcp-secure cert server` run as root issues it so), then restart pmcd", pcp_secure::api::nssdb::password::group_name(user.gid)),
                    )
                }
            };
            r.fail(
                &name,
                format!(
                    "{detail}: although TLS is configured, pmcd would serve plain connections only"
                ),
                fix,
            );
            false
        }
    }
}

/// The first directory on the way to `path` that the current user cannot
/// search, if that is why `path` cannot be opened.
fn blocking_directory(path: &str) -> Option<String> {
    let path = std::path::Path::new(path);
    let mut seen = std::path::PathBuf::new();
    for part in path.parent()?.components() {
        seen.push(part);
        // Reaching "DIR/." needs search (x) permission on DIR, as a file in it does.
        if let Err(e) = fs::metadata(seen.join(".")) {
            if e.kind() == io::ErrorKind::PermissionDenied {
                return Some(seen.display().to_string());
            }
        }
    }
    None
}

/// False (after a warning) when `path` exists but this non-root user may
/// not read it: pmcd (root) may well be able to.
pub(super) fn readable_or_warn(r: &mut Report, name: &str, key: &str, path: &str) -> bool {
    match fs::File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => {
            r.warn(
                name,
                format!("{key} \"{path}\" is not readable by this user ({e})"),
                "run `pcp-secure verify` as root to check it",
            );
            false
        }
        _ => true,
    }
}

/// Warns when a private key file grants any of `forbidden` mode bits.
pub(super) fn key_mode(r: &mut Report, name: &str, path: &str, forbidden: u32, chmod: &str) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    let mode = meta.mode() & 0o7777;
    if mode & forbidden != 0 {
        r.warn(
            name,
            format!(
                "\"{path}\" is mode {mode:04o}: the private key is readable or writable by {}",
                if forbidden & 0o070 != 0 && mode & 0o070 != 0 {
                    "its group or other users"
                } else {
                    "every user"
                }
            ),
            format!("{chmod} \"{path}\""),
        );
    } else {
        r.ok(
            name,
            format!("\"{path}\" is mode {mode:04o}, owner uid {}", meta.uid()),
        );
    }
}

/// Checks the server's chain against the configured CA (or, without one,
/// the CAs its NSS database trusts, or the system store): what a client
/// trusting the same CA would conclude.
pub(super) fn server_chain(r: &mut Report, conf: &TlsConf, served: &Served) {
    const NAME: &str = "server certificate chain";
    let chain = &served.chain;
    let system = || {
        (
            certs::Anchors::of(certs::system_roots()),
            "the system trust store (no tls-ca-cert-file or tls-ca-cert-dir set)".to_string(),
        )
    };
    let (anchors, source) =
        match certs::load_roots(conf.ca_cert_file.as_deref(), conf.ca_cert_dir.as_deref()) {
            Ok(Some(anchors)) => {
                let source = match (&conf.ca_cert_file, &conf.ca_cert_dir) {
                    (Some(f), _) => format!("tls-ca-cert-file \"{f}\""),
                    (None, Some(d)) => format!("tls-ca-cert-dir \"{d}\""),
                    (None, None) => unreachable!("anchors come from a setting"),
                };
                (anchors, source)
            }
            Ok(None) => match &served.anchors {
                ChainAnchors::System => system(),
                ChainAnchors::Database(cas, _) if cas.is_empty() => system(),
                ChainAnchors::Database(cas, spec) => (
                    certs::Anchors::trusting(cas.iter().cloned()),
                    format!("the CA(s) trusted in \"{spec}\" ({})", cas.len()),
                ),
                // The database's trust is unknown: its unlock check failed.
                ChainAnchors::Unknown => return,
            },
            Err(e) => {
                r.fail(
                    NAME,
                    e.to_string(),
                    "correct tls-ca-cert-file / tls-ca-cert-dir",
                );
                return;
            }
        };
    let leaf = &chain[0];
    if anchors
        .fingerprints
        .contains(&pcp_secure::api::trust::sha256(leaf))
    {
        r.ok(
            NAME,
            format!("the certificate itself is listed in {source}"),
        );
        return;
    }
    // What a client trusting the same CAs concludes, as the library's
    // verifier does: the chain through the certificates sent that may
    // issue (a certificate without basicConstraints never links it), or
    // for an X.509 version 1 certificate a CA there that signed it.
    let version1 = is_version1(leaf);
    let verdict: Box<dyn Fn(UnixTime) -> Result<(), rustls::Error>> = if version1 {
        Box::new(|at| version1_issuer(leaf, &anchors, at).map(drop))
    } else {
        let provider = pcp_secure::api::certs::provider(conf)
            .unwrap_or_else(|_| std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let verifier =
            match pcp_secure::api::trust::webpki(anchors.roots.clone(), &anchors.crls, &provider) {
                Ok(v) => v,
                Err(e) => {
                    r.warn(
                        NAME,
                        format!("cannot be checked: no CA in {source} ({e})"),
                        "set tls-ca-cert-file to the CA that issued the server certificate",
                    );
                    return;
                }
            };
        let cas = chain_cas(&chain[1..]);
        let name = ServerName::try_from("localhost").expect("valid name");
        Box::new(move |at| {
            verifier
                .verify_server_cert(leaf, &cas, &name, &[], at)
                .map(drop)
        })
    };
    let mut result = verdict(UnixTime::now());
    let mut dated = "";
    if matches!(&result, Err(e) if is_date_error(e)) {
        // Judge the chain itself inside the certificate's own validity; the
        // dates are reported by the validity check.
        if let Some(mid) = validity_midpoint(leaf) {
            if pcp_secure::api::trust::out_of_date(leaf) {
                result = verdict(mid);
                dated = " (its dates are checked separately)";
            }
        }
    }
    let info = CertInfo::of(leaf);
    let directly = if version1 {
        ": as an X.509 version 1 certificate it must be signed directly by a trusted CA (intermediate CAs are not followed)"
    } else {
        ""
    };
    match result {
        Ok(()) if version1 => r.ok(
            NAME,
            format!("signed directly by {}, a CA of {source}{dated}", info.issuer),
        ),
        Ok(()) => r.ok(NAME, format!("chains to {source}{dated}")),
        Err(e) if is_name_mismatch(&e) => r.ok(NAME, format!("chains to {source}{dated}")),
        Err(e) if is_date_error(&e) => r.fail(
            NAME,
            format!(
                "a CA certificate of the chain is outside its validity period ({})",
                cert_error_text(&e)
            ),
            "renew the CA certificate (and the certificates it issued)",
        ),
        Err(e) if is_untrusted_issuer(&e) => {
            if info.subject == info.issuer {
                r.warn(
                    NAME,
                    format!("self-signed, not in {source}: clients must save it on first use or list it in their tls-ca-cert-file"),
                    "issue the server certificate from a CA your clients trust (`pcp-secure cert ca`, `pcp-secure cert server HOST`)",
                );
            } else {
                r.warn(
                    NAME,
                    format!("does not chain to {source} (issuer {}){directly}: clients that trust only that will refuse it", info.issuer),
                    served.source.chain_fix(),
                );
            }
        }
        Err(e) if version1 && matches!(cert_error(&e), Some(CertificateError::BadSignature)) => r.fail(
            NAME,
            format!("rejected against {source}: a CA there is named {} but did not sign it (its signature does not verify with that CA's key, or uses SHA-1 or MD5)", info.issuer),
            "put the CA that signed it into tls-ca-cert-file, or issue a new server certificate (`pcp-secure cert server HOST`)",
        ),
        Err(e) => r.fail(
            NAME,
            format!("rejected against {source}: {}", cert_error_text(&e)),
            "issue a new server certificate (`pcp-secure cert server HOST`)",
        ),
    }
}

pub(super) fn cert_error(e: &rustls::Error) -> Option<&CertificateError> {
    match e {
        rustls::Error::InvalidCertificate(c) => Some(c),
        _ => None,
    }
}

pub(super) fn is_date_error(e: &rustls::Error) -> bool {
    matches!(
        cert_error(e),
        Some(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

/// A certificate verification error in words.
pub(crate) fn cert_error_text(e: &rustls::Error) -> String {
    let Some(c) = cert_error(e) else {
        return e.to_string();
    };
    match c {
        CertificateError::UnknownIssuer => "its issuer is not trusted".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it does not list the host name".into()
        }
        CertificateError::Other(other) => chain_problem(&other.to_string()),
        _ => pcp_secure::api::connection::certificate_problem(c)
            .unwrap_or_else(|| chain_problem(&format!("{c:?}"))),
    }
}

/// A refusal of the chain check (webpki's, carried by rustls under the
/// name of its variant) in words; any other text (the library's own
/// refusals are sentences) as it is.
fn chain_problem(name: &str) -> String {
    let variant = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    let rest = &name[variant.len()..];
    let is_variant = variant.starts_with(|c: char| c.is_ascii_uppercase())
        && (rest.is_empty() || rest.starts_with('(') || rest.starts_with(" {"));
    if !is_variant {
        return name.to_string();
    }
    match variant {
        "EndEntityUsedAsCa" => "a certificate that is not marked as a CA (no basicConstraints extension) would have to issue it".into(),
        "CaUsedAsEndEntity" => "it is a CA certificate (basicConstraints CA:TRUE), not one for a server".into(),
        "UnsupportedCertVersion" => "a certificate of the chain is an X.509 version 1 certificate, which can only be a trusted CA or the end entity".into(),
        "PathLenConstraintViolated" => "the chain is longer than a CA's path length constraint allows".into(),
        "NameConstraintViolation" => "a CA's name constraints exclude it".into(),
        "MaximumPathDepthExceeded" | "MaximumPathBuildCallsExceeded" | "MaximumSignatureChecksExceeded" => "the chain is too long".into(),
        "RequiredEkuNotFound" | "RequiredEkuNotFoundContext" => "it is not issued for TLS servers (extended key usage)".into(),
        v if v.starts_with("UnsupportedSignatureAlgorithm") => "it is signed with an algorithm that is not accepted (SHA-1 or MD5, or an unusual key)".into(),
        v if v.starts_with("UnsupportedCrl") || v.starts_with("UnknownRevocationStatus") => "its revocation status cannot be checked with the CRLs given".into(),
        v => {
            // Any other: the variant's name as words ("BadDer" -> "bad der").
            let mut words = String::new();
            for (i, ch) in v.char_indices() {
                if ch.is_ascii_uppercase() && i > 0 {
                    words.push(' ');
                }
                words.push(ch.to_ascii_lowercase());
            }
            format!("the chain check refused it ({words})")
        }
    }
}

/// (not before, not after) in seconds since the epoch.
pub(super) fn validity_period(cert: &CertificateDer<'_>) -> Option<(i64, i64)> {
    let (_, x509) = X509Certificate::from_der(cert).ok()?;
    Some((
        x509.validity().not_before.timestamp(),
        x509.validity().not_after.timestamp(),
    ))
}

pub(super) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn validity_midpoint(cert: &CertificateDer<'_>) -> Option<UnixTime> {
    let (from, to) = validity_period(cert)?;
    let mid = u64::try_from(from / 2 + to / 2).ok()?;
    Some(UnixTime::since_unix_epoch(Duration::from_secs(mid)))
}

/// Whether `cert` is inside its validity period: FAIL outside it, warn
/// when it ends within [`EXPIRY_WARNING_DAYS`]. `renew` says how to get a
/// new one.
pub(super) fn validity(r: &mut Report, name: &str, cert: &CertificateDer<'_>, renew: &str) {
    let info = CertInfo::of(cert);
    let Some((from, to)) = validity_period(cert) else {
        r.fail(name, "the certificate cannot be decoded", renew);
        return;
    };
    let now = now_secs();
    if now > to {
        r.fail(
            name,
            format!(
                "expired on {} ({} days ago)",
                info.not_after,
                (now - to) / 86_400
            ),
            renew,
        );
    } else if now < from {
        r.fail(
            name,
            format!(
                "not valid before {} (check the clock, or wait)",
                info.not_before
            ),
            format!("check this machine's clock; else {renew}"),
        );
    } else {
        let days = (to - now) / 86_400;
        if days < EXPIRY_WARNING_DAYS {
            r.warn(
                name,
                format!("expires on {} (in {days} days)", info.not_after),
                format!("renew it before then: {renew}"),
            );
        } else {
            r.ok(
                name,
                format!("valid until {} ({days} days left)", info.not_after),
            );
        }
    }
}

/// Whether the certificate lists `host`, as the library's clients check it
/// (the subject CN of an X.509 version 1 certificate).
pub(super) fn host_name(r: &mut Report, cert: &CertificateDer<'_>, host: &str, explicit: bool) {
    let name = format!("server name \"{host}\"");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let info = CertInfo::of(cert);
    let Ok(server_name) = ServerName::try_from(bare.to_string()) else {
        r.fail(
            &name,
            format!("\"{host}\" is not a valid host name or address"),
            "give a DNS name or an IP address",
        );
        return;
    };
    let listed_ok = pcp_secure::api::trust::server_name_check(cert, &server_name).is_ok();
    let fix = format!(
        "issue a certificate whose subjectAltName includes {host} (`pcp-secure cert server {host} ...`)"
    );
    let detail = if is_version1(cert) {
        let cn = match era::common_name(cert) {
            Some(cn) => format!("its subject CN \"{cn}\""),
            None => "its subject CN (it has none)".to_string(),
        };
        if listed_ok {
            r.ok(
                &name,
                format!("{cn}, the host name of an X.509 version 1 certificate (it has no subjectAltName)"),
            );
            return;
        }
        format!("not {cn}, the only host name an X.509 version 1 certificate has (no subjectAltName): clients connecting to \"{host}\" will refuse it")
    } else {
        let listed = if info.names.is_empty() {
            "no names".to_string()
        } else {
            info.names.join(", ")
        };
        if listed_ok {
            r.ok(&name, format!("listed in the certificate ({listed})"));
            return;
        }
        format!("not listed in the certificate, which lists {listed}: clients connecting to \"{host}\" will refuse it")
    };
    if explicit {
        r.fail(&name, detail, fix);
    } else {
        r.warn(
            &name,
            detail,
            format!("{fix}, or have clients use a name it lists (name the real ones with --host)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::chain_problem;

    #[test]
    fn chain_refusals_are_words() {
        assert!(chain_problem("EndEntityUsedAsCa").contains("no basicConstraints"));
        assert!(chain_problem("UnsupportedCertVersion").contains("version 1"));
        assert_eq!(
            chain_problem("RequiredEkuNotFoundContext { required: .. }"),
            "it is not issued for TLS servers (extended key usage)"
        );
        assert_eq!(
            chain_problem("BadDerTime"),
            "the chain check refused it (bad der time)"
        );
        // The library's own refusals are sentences already.
        let own = "The certificate saved for host x has changed";
        assert_eq!(chain_problem(own), own);
    }
}
