//! `pcp-secure verify [--json] [--host NAME...]`: checks the TLS setup of
//! this machine as collector (pmcd) and monitor (clients), one line per
//! check: `ok`, `warn` or `FAIL`, what was found, and for the last two what
//! to do. Exit status 1 when any check fails.
//!
//! Everything is judged by the library's own code: `ServerContext::build`
//! and `ClientContext::build` (exactly what pmcd and clients would do with
//! the same tls.conf), the library's webpki verifier for the chain and the
//! trust store's parser; NSS databases by the library's `nssdb` reader, as
//! the user pmcd runs as (see `verify/nss.rs`).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcp_secure::api::certs;
use pcp_secure::api::certs::{ClientContext, ServerContext};
use pcp_secure::api::settings::{tls_conf_path, TlsConf};
use pcp_secure::api::trust::CertInfo;
use pcp_secure::api::trust::TrustStore;
use pcp_secure::api::trust::{is_name_mismatch, is_untrusted_issuer};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::CertificateError;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::libpath;

mod nss;

/// Certificates expiring sooner than this are warned about.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// Arguments of `pcp-secure verify`.
#[derive(clap::Args)]
#[command(after_help = "\
Checks: tls.conf; the server certificate, key, chain, validity and host names
(pmcd), from PEM files or from an NSS database (tls-nssdb: the database, its
password file, the certificate named by tls-cert-nickname and its key); the
client settings, a client NSS database, your trust store and its permissions;
where libpcp_secure is and whether pmcd and clients started from here load it.
Each line is `ok`, `warn` or `FAIL` with what was found, and for warn and FAIL
what to do (after \"fix:\"). Exit status: 0 without FAIL lines, else 1.
Run it as root to check files only root can read.")]
pub(crate) struct Args {
    /// Print a JSON array of {"check", "status", "detail", "fix"} instead.
    #[arg(long)]
    json: bool,
    /// A host name (or address) clients use for this machine; the server
    /// certificate must list it. Repeatable. Default: localhost and this
    /// machine's host name (only warned about when missing).
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// Look for system files (systemd drop-ins, /etc/default/pmcd,
    /// /etc/ld.so.preload) below DIR.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// The user pmcd runs as (its -U; a name or uid), for tls-nssdb: the
    /// database is read as this user, and the password file must belong to
    /// it. Default: pcp when run as root and that user exists, else you.
    #[arg(long, value_name = "NAME", value_parser = nss::ServiceUser::parse)]
    service_user: Option<nss::ServiceUser>,
}

/// The verdict of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) detail: String,
    pub(crate) fix: Option<String>,
}

/// All checks so far.
#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn push(&mut self, name: &str, status: Status, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            name: name.to_string(),
            status,
            detail,
            fix,
        });
    }

    fn ok(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, Status::Ok, detail.into(), None);
    }

    fn warn(&mut self, name: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Status::Warn, detail.into(), Some(fix.into()));
    }

    fn fail(&mut self, name: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Status::Fail, detail.into(), Some(fix.into()));
    }

    fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("{:<4} {}: {}", c.status.word(), c.name, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(" — fix: ");
                out.push_str(fix);
            }
            out.push('\n');
        }
        out
    }

    fn json(&self) -> String {
        let items: Vec<String> = self
            .checks
            .iter()
            .map(|c| {
                format!(
                    "  {{\"check\": {}, \"status\": {}, \"detail\": {}, \"fix\": {}}}",
                    json_string(&c.name),
                    json_string(c.status.word()),
                    json_string(&c.detail),
                    c.fix
                        .as_deref()
                        .map(json_string)
                        .unwrap_or_else(|| "null".into())
                )
            })
            .collect();
        if items.is_empty() {
            "[]\n".to_string()
        } else {
            format!("[\n{}\n]\n", items.join(",\n"))
        }
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs the subcommand.
pub(crate) fn main(args: Args) -> ExitCode {
    let mut report = Report::default();
    let (conf, conf_path) = tls_conf(&mut report);
    let conf_name = conf_path
        .as_ref()
        .map(|p| format!("\"{}\"", p.display()))
        .unwrap_or_else(|| "tls.conf".to_string());
    let (hosts, explicit) = if args.hosts.is_empty() {
        let mut hosts = vec!["localhost".to_string()];
        let own = pcp_secure::api::connection::local_host_name();
        if !own.is_empty() && own != "localhost" {
            hosts.push(own);
        }
        (hosts, false)
    } else {
        (args.hosts.clone(), true)
    };
    let user = args
        .service_user
        .unwrap_or_else(nss::ServiceUser::default_for_pmcd);
    server(&mut report, &conf, &conf_name, &hosts, explicit, &user);
    client(&mut report, &conf, conf_path.as_deref(), &conf_name);
    library(&mut report, &args.root);
    if args.json {
        print!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// ---------------------------------------------------------------------------
// tls.conf

fn tls_conf(r: &mut Report) -> (TlsConf, Option<PathBuf>) {
    const NAME: &str = "tls.conf";
    let from = if std::env::var_os("PCP_TLSCONF_PATH").is_some() {
        "PCP_TLSCONF_PATH".to_string()
    } else {
        let pcp_conf = std::env::var("PCP_CONF").unwrap_or_else(|_| "/etc/pcp.conf".into());
        format!("the PCP_TLSCONF_PATH line of {pcp_conf}")
    };
    let Some(path) = tls_conf_path() else {
        r.fail(
            NAME,
            format!("no tls.conf: PCP_TLSCONF_PATH is not set and {from} is missing"),
            "add PCP_TLSCONF_PATH=/etc/pcp/tls.conf to /etc/pcp.conf (or export PCP_TLSCONF_PATH)",
        );
        return (TlsConf::default(), None);
    };
    match TlsConf::load(&path) {
        Ok(conf) => {
            let set = set_keys(&conf);
            r.ok(
                NAME,
                format!(
                    "\"{}\" (from {from}) sets {}",
                    path.display(),
                    if set.is_empty() {
                        "nothing".to_string()
                    } else {
                        set.join(", ")
                    }
                ),
            );
            (conf, Some(path))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => {
            r.warn(
                NAME,
                format!(
                    "\"{}\" (from {from}) is not readable by this user ({e})",
                    path.display()
                ),
                "run `pcp-secure verify` as root (or as the user pmcd runs as) to check it",
            );
            (TlsConf::default(), Some(path))
        }
        Err(e) => {
            r.fail(
                NAME,
                format!("\"{}\" (from {from}): cannot read ({e})", path.display()),
                format!(
                    "create \"{}\" with tls-cert-file, tls-key-file and tls-ca-cert-file (see the README; `pcp-secure cert` makes the files)",
                    path.display()
                ),
            );
            (TlsConf::default(), Some(path))
        }
    }
}

fn set_keys(conf: &TlsConf) -> Vec<&'static str> {
    [
        ("tls-cert-file", &conf.cert_file),
        ("tls-key-file", &conf.key_file),
        ("tls-ca-cert-file", &conf.ca_cert_file),
        ("tls-ca-cert-dir", &conf.ca_cert_dir),
        ("tls-ciphers", &conf.ciphers),
        ("tls-ciphersuites", &conf.ciphersuites),
        ("tls-client-cert-file", &conf.client_cert_file),
        ("tls-client-key-file", &conf.client_key_file),
        ("tls-verify-clients", &conf.verify_clients),
        ("tls-nssdb", &conf.nssdb),
        ("tls-cert-nickname", &conf.cert_nickname),
        ("tls-nssdb-password-file", &conf.nssdb_password_file),
    ]
    .into_iter()
    .filter(|(_, v)| v.is_some())
    .map(|(k, _)| k)
    .collect()
}

// ---------------------------------------------------------------------------
// Server (pmcd)

/// Where the server certificate comes from: what the shared checks (chain,
/// validity, host names) need besides the certificate itself.
struct Served {
    /// The certificate pmcd would send, then the certificates that may
    /// complete its chain.
    chain: Vec<CertificateDer<'static>>,
    /// The files or database it comes from.
    source: CertSource,
    /// What the chain is judged against when tls.conf names no CA.
    anchors: ChainAnchors,
    /// How many CAs the server's NSS database trusts to issue client
    /// certificates (`None` for PEM files).
    db_client_cas: Option<usize>,
}

/// The origin of the server certificate, for the fixes.
enum CertSource {
    /// tls-cert-file and tls-key-file.
    Pem,
    /// tls-nssdb and tls-cert-nickname.
    Nss { spec: String, nickname: String },
}

impl CertSource {
    /// What to do about a certificate outside its validity period.
    fn renew(&self, conf_name: &str) -> String {
        match self {
            CertSource::Pem => format!(
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
            CertSource::Pem => "put the issuing CA into tls-ca-cert-file (and the clients' tls.conf), and intermediates after the certificate in tls-cert-file".into(),
            CertSource::Nss { spec, .. } => format!(
                "import the issuing CA and any intermediates into \"{spec}\" (certutil -A -d {spec} -t \"CT,,\" -n NAME -i CA.pem) and give your clients that CA"
            ),
        }
    }
}

/// The trust anchors for the chain check when tls.conf sets neither
/// tls-ca-cert-file nor tls-ca-cert-dir.
enum ChainAnchors {
    /// The system trust store.
    System,
    /// The CAs an NSS database trusts (the system store when empty), and
    /// the database for messages.
    Database(Vec<CertificateDer<'static>>, String),
    /// Unknown (a database that could not be unlocked): no chain check.
    Unknown,
}

fn server(
    r: &mut Report,
    conf: &TlsConf,
    conf_name: &str,
    hosts: &[String],
    explicit: bool,
    user: &nss::ServiceUser,
) {
    let served = match (&conf.cert_file, &conf.nssdb) {
        (Some(file), Some(spec)) => {
            r.fail(
                "server certificate",
                format!("tls-cert-file \"{file}\" and tls-nssdb \"{spec}\" are both set in {conf_name}: pmcd refuses both and serves plain connections only"),
                format!("keep one in {conf_name}: remove tls-cert-file and tls-key-file to use the NSS database, or tls-nssdb to use the PEM files"),
            );
            return;
        }
        (None, Some(spec)) => nss::server(r, conf, conf_name, spec, user),
        (Some(file), None) => pem_server(r, conf, conf_name, file),
        (None, None) => {
            r.warn(
                "server certificate",
                format!("no tls-cert-file or tls-nssdb in {conf_name}: pmcd serves plain connections only"),
                format!(
                    "set tls-cert-file and tls-key-file in {conf_name} (`pcp-secure cert server HOST` makes them), or tls-nssdb"
                ),
            );
            return;
        }
    };
    let Some(served) = served else {
        return;
    };
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
            CertSource::Pem => (
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
}

/// The PEM half of the server checks: tls-cert-file, tls-key-file and the
/// context pmcd would build from them.
fn pem_server(r: &mut Report, conf: &TlsConf, conf_name: &str, cert_file: &str) -> Option<Served> {
    if !readable_or_warn(r, "server certificate", "tls-cert-file", cert_file) {
        return None;
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
    if key_ok {
        server_setup(r, ServerContext::build(conf).map(drop), conf_name);
    }
    Some(Served {
        chain,
        source: CertSource::Pem,
        anchors: ChainAnchors::System,
        db_client_cas: None,
    })
}

/// The "server TLS setup" line: whether `ServerContext::build` succeeded.
fn server_setup(r: &mut Report, built: pcp_secure::api::Result<()>, conf_name: &str) {
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

/// False (after a warning) when `path` exists but this non-root user may
/// not read it: pmcd (root) may well be able to.
fn readable_or_warn(r: &mut Report, name: &str, key: &str, path: &str) -> bool {
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
fn key_mode(r: &mut Report, name: &str, path: &str, forbidden: u32, chmod: &str) {
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
fn server_chain(r: &mut Report, conf: &TlsConf, served: &Served) {
    const NAME: &str = "server certificate chain";
    let chain = &served.chain;
    let system = || {
        (
            certs::Anchors {
                roots: certs::system_roots(),
                crls: Vec::new(),
                fingerprints: Vec::new(),
            },
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
                ChainAnchors::Database(cas, spec) => {
                    let mut roots = rustls::RootCertStore::empty();
                    roots.add_parsable_certificates(cas.iter().cloned());
                    (
                        certs::Anchors {
                            roots,
                            crls: Vec::new(),
                            fingerprints: Vec::new(),
                        },
                        format!("the CA(s) trusted in \"{spec}\" ({})", cas.len()),
                    )
                }
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
    let provider = pcp_secure::api::certs::provider(conf)
        .unwrap_or_else(|_| std::sync::Arc::new(rustls::crypto::ring::default_provider()));
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
    let name = ServerName::try_from("localhost").expect("valid name");
    let verdict = |at: UnixTime| verifier.verify_server_cert(leaf, &chain[1..], &name, &[], at);
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
    match result {
        Ok(_) => r.ok(NAME, format!("chains to {source}{dated}")),
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
            let info = CertInfo::of(leaf);
            if info.subject == info.issuer {
                r.warn(
                    NAME,
                    format!("self-signed, not in {source}: clients must save it on first use or list it in their tls-ca-cert-file"),
                    "issue the server certificate from a CA your clients trust (`pcp-secure cert ca`, `pcp-secure cert server HOST`)",
                );
            } else {
                r.warn(
                    NAME,
                    format!("does not chain to {source} (issuer {}): clients that trust only that will refuse it", info.issuer),
                    served.source.chain_fix(),
                );
            }
        }
        Err(e) => r.fail(
            NAME,
            format!("rejected against {source}: {}", cert_error_text(&e)),
            "issue a new server certificate (`pcp-secure cert server HOST`)",
        ),
    }
}

fn cert_error(e: &rustls::Error) -> Option<&CertificateError> {
    match e {
        rustls::Error::InvalidCertificate(c) => Some(c),
        _ => None,
    }
}

fn is_date_error(e: &rustls::Error) -> bool {
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
        _ => pcp_secure::api::connection::certificate_problem(c).unwrap_or_else(|| e.to_string()),
    }
}

/// (not before, not after) in seconds since the epoch.
fn validity_period(cert: &CertificateDer<'_>) -> Option<(i64, i64)> {
    let (_, x509) = X509Certificate::from_der(cert).ok()?;
    Some((
        x509.validity().not_before.timestamp(),
        x509.validity().not_after.timestamp(),
    ))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn validity_midpoint(cert: &CertificateDer<'_>) -> Option<UnixTime> {
    let (from, to) = validity_period(cert)?;
    let mid = u64::try_from(from / 2 + to / 2).ok()?;
    Some(UnixTime::since_unix_epoch(Duration::from_secs(mid)))
}

/// Whether `cert` is inside its validity period: FAIL outside it, warn
/// when it ends within [`EXPIRY_WARNING_DAYS`]. `renew` says how to get a
/// new one.
fn validity(r: &mut Report, name: &str, cert: &CertificateDer<'_>, renew: &str) {
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

/// Whether the certificate lists `host`.
fn host_name(r: &mut Report, cert: &CertificateDer<'_>, host: &str, explicit: bool) {
    let name = format!("server name \"{host}\"");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let info = CertInfo::of(cert);
    let listed = if info.names.is_empty() {
        "no names".to_string()
    } else {
        info.names.join(", ")
    };
    let Ok(server_name) = ServerName::try_from(bare.to_string()) else {
        r.fail(
            &name,
            format!("\"{host}\" is not a valid host name or address"),
            "give a DNS name or an IP address",
        );
        return;
    };
    if pcp_secure::api::trust::name_check(cert, &server_name).is_ok() {
        r.ok(&name, format!("listed in the certificate ({listed})"));
        return;
    }
    let detail = format!("not listed in the certificate, which lists {listed}: clients connecting to \"{host}\" will refuse it");
    let fix = format!(
        "issue a certificate whose subjectAltName includes {host} (`pcp-secure cert server {host} ...`)"
    );
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

// ---------------------------------------------------------------------------
// Client (pminfo, pmlogger, ...)

fn client(r: &mut Report, conf: &TlsConf, conf_path: Option<&Path>, conf_name: &str) {
    match ClientContext::build(conf, conf_path.map(Path::to_path_buf)) {
        Ok(ctx) => {
            let identity = match (&conf.client_cert_file, ctx.has_identity()) {
                (Some(file), true) => format!("client certificate \"{file}\" with its key"),
                (None, true) => "a client certificate from the NSS database".to_string(),
                _ => "no client certificate (needed only for pmcd -Q or tls-verify-clients)".to_string(),
            };
            r.ok("client TLS setup", format!("clients trust {}; {identity}", ctx.trust_source));
            if conf.ca_cert_file.is_none() && conf.ca_cert_dir.is_none() && certs::system_roots().is_empty() {
                r.warn(
                    "client trust",
                    "no tls-ca-cert-file or tls-ca-cert-dir and the system trust store is empty: every server certificate is a first-use question",
                    format!("set tls-ca-cert-file in {conf_name} to the CA that issues your pmcd certificates"),
                );
            }
        }
        Err(e) => r.fail(
            "client TLS setup",
            e.to_string(),
            format!("correct the setting named here in {conf_name}; clients cannot connect securely until then"),
        ),
    }
    if let (Some(cert_file), Some(key_file)) = (&conf.client_cert_file, &conf.client_key_file) {
        if let Ok(chain) = certs::load_chain("tls-client-cert-file", cert_file) {
            validity(
                r,
                "client certificate validity",
                &chain[0],
                &format!("issue a new certificate (`pcp-secure cert client NAME`) and point tls-client-cert-file in {conf_name} at it"),
            );
        }
        if !key_file.is_empty() {
            key_mode(r, "client key permissions", key_file, 0o077, "chmod 600");
        }
    }
    nss::client(r, conf, conf_name);
    trust_store(r);
}

fn trust_store(r: &mut Report) {
    const NAME: &str = "trust store";
    let Some(store) = TrustStore::for_user() else {
        r.warn(
            NAME,
            "neither PCP_SECURE_DB_PATH nor HOME is set: server certificates you accept cannot be saved",
            "set HOME, or PCP_SECURE_DB_PATH to a private directory",
        );
        return;
    };
    let file = store.file();
    match store.load() {
        Ok(entries) if entries.is_empty() && !file.exists() => r.ok(
            NAME,
            format!("\"{}\" does not exist yet (no server certificate saved)", file.display()),
        ),
        Ok(entries) => r.ok(
            NAME,
            format!("\"{}\": {} saved server certificate(s)", file.display(), entries.len()),
        ),
        Err(e) => r.fail(
            NAME,
            e.to_string(),
            format!(
                "repair or remove the entry at that line of \"{}\" (clients ignore the whole file until then)",
                file.display()
            ),
        ),
    }
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    // SAFETY: geteuid takes no arguments and cannot fail.
    let uid = unsafe { libc::geteuid() };
    for (path, chmod) in [(&dir, "700"), (&file, "600")] {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        if mode & 0o066 != 0 {
            problems.push(format!(
                "\"{}\" is mode {mode:04o} (group or other users can read or write it)",
                path.display()
            ));
            fixes.push(format!("chmod {chmod} \"{}\"", path.display()));
        }
        if meta.uid() != uid {
            problems.push(format!(
                "\"{}\" is owned by uid {}, not by you (uid {uid})",
                path.display(),
                meta.uid()
            ));
            fixes.push(format!("chown {uid} \"{}\"", path.display()));
        }
    }
    if !problems.is_empty() {
        r.warn(
            "trust store permissions",
            problems.join("; "),
            fixes.join("; "),
        );
    } else if dir.exists() {
        r.ok(
            "trust store permissions",
            format!("\"{}\" and its file are private to you", dir.display()),
        );
    }
}

// ---------------------------------------------------------------------------
// The library and who loads it

fn library(r: &mut Report, root: &Path) {
    let lib = match libpath::find() {
        Ok(lib) => {
            let from = if std::env::var_os(libpath::ENV).is_some_and(|v| !v.is_empty()) {
                format!(" (from {})", libpath::ENV)
            } else {
                String::new()
            };
            r.ok("library", format!("{}{from}", lib.display()));
            Some(lib)
        }
        Err(e) => {
            r.fail(
                "library",
                e,
                "build it (cargo build --release) and install it (make install PREFIX=/usr/local), or set PCP_SECURE_LIB",
            );
            None
        }
    };
    pmcd_preload(r, root, lib.as_deref());
    client_preload(r, lib.as_deref());
    secure_sockets(r);
}

/// "PATH (the library found above)" or "PATH (pcp-secure found X)".
fn compare(entry: &str, lib: Option<&Path>) -> String {
    match lib {
        Some(lib) if !libpath::same_file(Path::new(entry), lib) => {
            format!(" (not the library found above, {})", lib.display())
        }
        _ => String::new(),
    }
}

fn pmcd_preload(r: &mut Report, root: &Path, lib: Option<&Path>) {
    const NAME: &str = "pmcd preload";
    let install = "`pcp-secure systemd pmcd --install`, then systemctl daemon-reload && systemctl restart pmcd";
    if let Some((value, origin)) = systemd_ld_preload(root, "pmcd") {
        let ours: Vec<&str> = libpath::preload_entries(&value)
            .filter(|e| libpath::is_ours(e))
            .collect();
        match ours.first() {
            Some(entry)
                if root.join(entry.trim_start_matches('/')).is_file()
                    || Path::new(entry).is_file() =>
            {
                r.ok(
                NAME,
                    format!("{origin} preloads {entry} into pmcd{}", compare(entry, lib)),
                )
            }
            Some(entry) => r.fail(
                NAME,
                format!("{origin} preloads {entry}, which does not exist: pmcd runs with stock TLS"),
                install,
            ),
            None => r.warn(
                NAME,
                format!("{origin} sets LD_PRELOAD={value}, without libpcp_secure: pmcd uses libpcp's OpenSSL TLS"),
                install,
            ),
        }
        return;
    }
    let ld_so_preload = root.join("etc/ld.so.preload");
    if let Ok(text) = fs::read_to_string(&ld_so_preload) {
        let text: String = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let found = libpath::preload_entries(&text).find(|e| libpath::is_ours(e));
        if let Some(entry) = found {
            r.ok(
                NAME,
                format!(
                    "{} preloads {entry} into every program, pmcd included{}",
                    ld_so_preload.display(),
                    compare(entry, lib)
                ),
            );
            return;
        }
    }
    for defaults in ["etc/default/pmcd", "etc/sysconfig/pmcd"] {
        let path = root.join(defaults);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if text.lines().any(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
            l.starts_with("LD_PRELOAD=")
        }) {
            r.warn(
                NAME,
                format!(
                    "{} sets LD_PRELOAD, but PCP's pmcd start script passes only the PMCD* and PCP* settings of that file to pmcd",
                    path.display()
                ),
                format!("remove it there and run {install}"),
            );
            return;
        }
    }
    r.warn(
        NAME,
        "no systemd drop-in for pmcd.service sets LD_PRELOAD to libpcp_secure: pmcd uses libpcp's OpenSSL TLS",
        install,
    );
}

/// The `LD_PRELOAD` that `SERVICE.service` would get from its unit file and
/// drop-ins below `root` (later settings win, as in systemd), with the file
/// that set it.
fn systemd_ld_preload(root: &Path, service: &str) -> Option<(String, String)> {
    // Unit directories, most important first.
    let dirs = [
        "etc/systemd/system",
        "run/systemd/system",
        "usr/lib/systemd/system",
        "lib/systemd/system",
    ];
    let unit = format!("{service}.service");
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(main) = dirs
        .iter()
        .map(|d| root.join(d).join(&unit))
        .find(|p| p.is_file())
    {
        files.push(main);
    }
    // Drop-ins: by file name across all directories; a name in a more
    // important directory hides the same name in the others.
    let mut drop_ins: std::collections::BTreeMap<std::ffi::OsString, PathBuf> = Default::default();
    for dir in dirs.iter().rev() {
        let Ok(entries) = fs::read_dir(root.join(dir).join(format!("{unit}.d"))) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "conf") {
                drop_ins.insert(entry.file_name(), path);
            }
        }
    }
    files.extend(drop_ins.into_values());

    let mut value: Option<(String, String)> = None;
    let mut from_files: Option<(String, String)> = None;
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let origin = file
            .strip_prefix(root)
            .map(|p| format!("/{}", p.display()))
            .unwrap_or_else(|_| file.display().to_string());
        let mut in_service = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            if !in_service || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, rest)) = line.split_once('=') else {
                continue;
            };
            match key.trim() {
                "Environment" if rest.trim().is_empty() => value = None,
                "Environment" => {
                    for word in systemd_words(rest) {
                        if let Some(v) = word.strip_prefix("LD_PRELOAD=") {
                            value = Some((v.to_string(), origin.clone()));
                        }
                    }
                }
                "UnsetEnvironment"
                    if systemd_words(rest)
                        .iter()
                        .any(|w| w == "LD_PRELOAD" || w.starts_with("LD_PRELOAD=")) =>
                {
                    value = None;
                    from_files = None;
                }
                "EnvironmentFile" => {
                    let name = rest.trim().trim_start_matches('-');
                    let env_file = root.join(name.trim_start_matches('/'));
                    if let Ok(env) = fs::read_to_string(&env_file) {
                        for l in env.lines() {
                            let l = l.trim();
                            let l = l.strip_prefix("export ").unwrap_or(l);
                            if let Some(v) = l.strip_prefix("LD_PRELOAD=") {
                                let v = v.trim().trim_matches('"').trim_matches('\'');
                                from_files = Some((
                                    v.to_string(),
                                    format!("{name} (EnvironmentFile of {origin})"),
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Variables from environment files override Environment= lines.
    from_files.or(value)
}

/// The words of a systemd `Environment=` value: separated by white space,
/// with double or single quotes and backslash escapes.
fn systemd_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn client_preload(r: &mut Report, lib: Option<&Path>) {
    const NAME: &str = "client preload";
    let run = "run clients as `pcp-secure run -- pminfo ...`, or export LD_PRELOAD=".to_string()
        + &lib
            .map(|l| l.display().to_string())
            .unwrap_or_else(|| "/path/to/libpcp_secure.so.1".into());
    let value = std::env::var("LD_PRELOAD").unwrap_or_default();
    let found = libpath::preload_entries(&value).find(|e| libpath::is_ours(e));
    match found {
        Some(entry) if Path::new(entry).is_file() => r.ok(
            NAME,
            format!("LD_PRELOAD names {entry}: PCP clients started from this environment use libpcp_secure{}", compare(entry, lib)),
        ),
        Some(entry) => r.warn(
            NAME,
            format!("LD_PRELOAD names {entry}, which does not exist"),
            run,
        ),
        None => r.warn(
            NAME,
            "LD_PRELOAD does not name libpcp_secure: PCP clients started from this environment use libpcp's own TLS",
            run,
        ),
    }
}

fn secure_sockets(r: &mut Report) {
    const NAME: &str = "client secure sockets";
    let fix = "export PCP_SECURE_SOCKETS=enforce (or use pcps:// host names)";
    match std::env::var("PCP_SECURE_SOCKETS") {
        Err(_) => r.warn(
            NAME,
            "PCP_SECURE_SOCKETS is not set: clients use TLS only for pcps:// hosts",
            fix,
        ),
        Ok(v) if v.is_empty() || v == "1" || v == "enforce" => {
            r.ok(NAME, format!("PCP_SECURE_SOCKETS={v}: clients require TLS"))
        }
        Ok(v) if v == "relaxed" => r.warn(
            NAME,
            "PCP_SECURE_SOCKETS=relaxed: clients fall back to plain connections where pmcd offers no TLS",
            fix,
        ),
        Ok(v) => r.warn(
            NAME,
            format!("PCP_SECURE_SOCKETS={v} is not a value libpcp knows: clients use TLS only for pcps:// hosts"),
            fix,
        ),
    }
}

// ---------------------------------------------------------------------------
// Small helpers

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(json_string("— ok"), "\"— ok\"");
    }

    #[test]
    fn systemd_words_honour_quotes() {
        assert_eq!(
            systemd_words(r#"A=1 "LD_PRELOAD=/x y.so" 'B=2 3' C=\"q"#),
            vec!["A=1", "LD_PRELOAD=/x y.so", "B=2 3", "C=\"q"]
        );
    }

    #[test]
    fn drop_ins_override_and_reset() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("etc/systemd/system/pmcd.service.d");
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join("a.conf"),
            "[Service]\nEnvironment=LD_PRELOAD=/a/libpcp_secure.so.1\n",
        )
        .unwrap();
        assert_eq!(
            systemd_ld_preload(root.path(), "pmcd").unwrap().0,
            "/a/libpcp_secure.so.1"
        );
        fs::write(d.join("b.conf"), "[Service]\nEnvironment=\n").unwrap();
        assert!(systemd_ld_preload(root.path(), "pmcd").is_none());
        fs::write(d.join("c.conf"), "[Unit]\nEnvironment=LD_PRELOAD=/u.so\n[Service]\nEnvironment=\"LD_PRELOAD=/c/libpcp_secure.so.1\" X=1\n").unwrap();
        let (value, origin) = systemd_ld_preload(root.path(), "pmcd").unwrap();
        assert_eq!(value, "/c/libpcp_secure.so.1");
        assert_eq!(origin, "/etc/systemd/system/pmcd.service.d/c.conf");
    }
}
