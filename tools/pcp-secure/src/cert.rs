//! `pcp-secure cert`: a local certificate authority and the server
//! (collector) and client (monitor) certificates it issues, as PEM files
//! ready for tls.conf — what PCP's guide does with openssl and certutil.
//!
//! Keys are ECDSA (P-256, or P-384 on request; small, fast, and what PCP's
//! guide recommends). A CA made elsewhere can sign too, if its key is an
//! unencrypted PKCS#8 PEM (ECDSA, Ed25519 or RSA).
//!
//! Files are created with their final mode (keys 0600, certificates 0644;
//! a server key issued by root 0640 with the group of the user pmcd runs
//! as) and never replaced without `--force`; with it, each file is written
//! beside its target and renamed over it, and replacing a CA says what it
//! breaks.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Subcommand, ValueEnum};
use pcp_secure::api::trust::CertInfo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

/// Arguments of `pcp-secure cert`.
#[derive(clap::Args)]
#[command(after_help = "\
Typical use, on the collector (pmcd) host:
  pcp-secure cert ca --dir /etc/pcp/tls
  pcp-secure cert server collector.example.com 192.0.2.10 --dir /etc/pcp/tls
and for each monitor (client) that must present a certificate:
  pcp-secure cert client monitor1 --dir /etc/pcp/tls
then copy ca.crt (never ca.key) and the client's .crt/.key to the monitor.
Each command prints the tls.conf lines to use.")]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Create a local certificate authority: DIR/ca.crt and DIR/ca.key.
    Ca(CaArgs),
    /// Issue a server (collector) certificate for HOST... signed by the local CA.
    Server(ServerArgs),
    /// Issue a client (monitor) certificate named NAME signed by the local CA.
    Client(ClientArgs),
}

/// Options every kind of certificate takes.
#[derive(clap::Args)]
struct Common {
    /// Directory to write the files in (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Key type. Only ECDSA keys can be generated here (no RSA).
    #[arg(long, value_enum, value_name = "TYPE", default_value_t = KeyType::P256)]
    key_type: KeyType,
    /// Replace files that already exist.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct CaArgs {
    #[command(flatten)]
    common: Common,
    /// Common name (CN) of the CA [default: "pcp-secure CA on THIS-HOST"].
    #[arg(long, value_name = "CN")]
    name: Option<String>,
    /// Days the CA certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 3650)]
    days: u32,
}

/// Options of the certificates the CA issues.
#[derive(clap::Args)]
struct Issue {
    /// Directory holding ca.crt and ca.key [default: --dir].
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// Base name of the files written: NAME.crt and NAME.key.
    #[arg(long, value_name = "NAME")]
    out: Option<String>,
}

#[derive(clap::Args)]
#[command(after_help = "\
Every HOST becomes a subjectAltName (IP addresses as IP, the rest as DNS
names; *.example.com is allowed); the first is also the common name.
Name the server exactly as clients will type it after -h: for example
  pcp-secure cert server localhost 127.0.0.1 ::1 collector.example.com
NAME.crt holds the server certificate followed by the CA certificate.
Run as root, NAME.key is written root:pcp mode 0640 (--service-user), since
pmcd reads it after dropping to user pcp; never readable by others.")]
struct ServerArgs {
    /// Host names and IP addresses the server is reached by.
    #[arg(value_name = "HOST", required = true)]
    hosts: Vec<String>,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    issue: Issue,
    /// Days the certificate is valid (at most until the CA expires).
    #[arg(long, value_name = "N", default_value_t = 825)]
    days: u32,
    /// The user pmcd runs as (its -U): run as root, the key is written
    /// owned by root, group of that user, mode 0640, so pmcd can read it
    /// after it drops to that user. Default: pcp when run as root and that
    /// user exists; otherwise the key is yours, mode 0600.
    #[arg(long, value_name = "NAME", value_parser = crate::user::ServiceUser::parse)]
    service_user: Option<crate::user::ServiceUser>,
}

#[derive(clap::Args)]
#[command(after_help = "\
NAME.crt holds the client certificate followed by the CA certificate.
--out defaults to NAME, which must then be usable as a file name.")]
struct ClientArgs {
    /// The client's name (its certificate's common name).
    #[arg(value_name = "NAME")]
    name: String,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    issue: Issue,
    /// Days the certificate is valid (at most until the CA expires).
    #[arg(long, value_name = "N", default_value_t = 825)]
    days: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256.
    P256,
    /// ECDSA on NIST P-384 with SHA-384.
    P384,
}

/// Runs the subcommand.
pub(crate) fn main(args: Args) -> ExitCode {
    let result = match args.what {
        What::Ca(a) => ca(a),
        What::Server(a) => server(a),
        What::Client(a) => client(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("pcp-secure cert: {why}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

/// Certificates are backdated this much, for clocks slightly behind.
const BACKDATE: Duration = Duration::from_secs(3600);
/// Upper bound of --days (100 years).
const MAX_DAYS: u32 = 36_500;

fn ca(args: CaArgs) -> Result<()> {
    let dir = &args.common.dir;
    let name = args.name.clone().unwrap_or_else(|| {
        format!(
            "pcp-secure CA on {}",
            pcp_secure::api::connection::local_host_name()
        )
    });
    if name.trim().is_empty() {
        return Err("--name: the CA needs a non-empty name".into());
    }
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    refuse_existing(&[&crt, &key], args.common.force)?;
    let replaced = if args.common.force {
        replaced_ca(dir, &crt)
    } else {
        None
    };

    let key_pair = generate(args.common.key_type)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(&name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(serial()?);
    let (not_before, not_after) = validity(args.days, None)?;
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + not_before;
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + not_after;
    let cert = params
        .self_signed(&key_pair)
        .map_err(|e| format!("cannot make the CA certificate ({e})"))?;

    write_files(
        dir,
        &[
            Written::new(&key, key_pair.serialize_pem(), 0o600),
            Written::new(&crt, cert.pem(), 0o644),
        ],
        args.common.force,
    )?;
    let (crt, key) = (absolute(&crt), absolute(&key));
    if let Some(warning) = replaced {
        eprintln!("{warning}");
    }
    let info = CertInfo::of(cert.der());
    println!(
        "wrote {} (CA certificate \"{}\", valid until {})",
        crt.display(),
        info.subject,
        info.not_after
    );
    println!(
        "wrote {} (CA private key, mode 0600: keep it on this host, never copy it)",
        key.display()
    );
    println!("SHA256 fingerprint {}", info.sha256);
    println!();
    println!("Next: issue certificates with");
    println!(
        "  pcp-secure cert server HOST... --ca-dir {}",
        absolute(dir).display()
    );
    println!(
        "  pcp-secure cert client NAME --ca-dir {}",
        absolute(dir).display()
    );
    println!("Clients and servers trust this CA with, in their tls.conf:");
    println!("tls-ca-cert-file = {}", crt.display());
    Ok(())
}

/// What replacing the CA in `crt` breaks, when there is one: the
/// certificates of `dir` it issued, and every client or pmcd trusting it.
fn replaced_ca(dir: &Path, crt: &Path) -> Option<String> {
    let old = pcp_secure::api::certs::load_chain("CA certificate", crt.to_str()?)
        .ok()?
        .remove(0);
    let info = CertInfo::of(&old);
    let (_, old_x509) = X509Certificate::from_der(&old).ok()?;
    let mut issued: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "crt") && path != crt)
        .filter(|path| {
            let Some(first) = path
                .to_str()
                .and_then(|p| pcp_secure::api::certs::load_chain("certificate", p).ok())
                .and_then(|chain| chain.into_iter().next())
            else {
                return false;
            };
            X509Certificate::from_der(&first).is_ok_and(|(_, leaf)| {
                leaf.issuer().as_raw() == old_x509.subject().as_raw()
                    && pcp_secure::api::trust::signed_by(&first, &old).is_ok()
            })
        })
        .map(|path| path.display().to_string())
        .collect();
    issued.sort();
    let issued = if issued.is_empty() {
        String::new()
    } else {
        format!(" (here: {})", issued.join(", "))
    };
    Some(format!(
        "pcp-secure cert: warning: replacing the CA \"{}\" (SHA256 {}) of {}. This breaks every certificate it issued{issued}: they no longer chain to ca.crt, so reissue each server and client certificate with `pcp-secure cert server|client ... --force`; and every client and pmcd that trusts the old CA (tls-ca-cert-file, `pcp-secure trust add --ca`) refuses certificates of the new one until it is given the new ca.crt",
        info.subject,
        info.sha256,
        crt.display()
    ))
}

fn server(args: ServerArgs) -> Result<()> {
    let mut sans = Vec::new();
    for host in &args.hosts {
        sans.push(san(host)?);
    }
    let first = host_text(&args.hosts[0]);
    let out = args.issue.out.clone().unwrap_or_else(|| "server".into());
    let reader = key_reader(args.service_user)?;
    let made = issue(
        &args.common,
        &args.issue,
        &out,
        args.days,
        reader.as_ref(),
        |params| {
            params.distinguished_name = common_name(&first);
            params.subject_alt_names = sans;
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        },
    )?;
    let names: Vec<String> = args.hosts.iter().map(|h| host_text(h)).collect();
    made.report(&format!("server certificate for {}", names.join(", ")));
    if let Some(user) = &reader {
        if let Err(why) = crate::user::as_user(user, || fs::File::open(&made.key).map(drop))
            .and_then(|opened| opened.map_err(|e| e.to_string()))
        {
            println!(
                "warning: user {} (pmcd's) still cannot open {} ({why}): let it into the directories on the way (chmod o+x or chgrp {} DIR && chmod g+x DIR), or pmcd serves plain connections only",
                user.name,
                made.key.display(),
                pcp_secure::api::nssdb::password::group_name(user.gid)
            );
        }
    }
    println!("In pmcd's tls.conf (PCP_TLSCONF_PATH, normally /etc/pcp/tls.conf):");
    println!("tls-cert-file = {}", made.crt.display());
    println!("tls-key-file = {}", made.key.display());
    println!("tls-ca-cert-file = {}", made.ca.display());
    println!(
        "(clients trust this server with: tls-ca-cert-file = {})",
        made.ca.display()
    );
    Ok(())
}

fn client(args: ClientArgs) -> Result<()> {
    let name = args.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(
            "NAME must have 1 to 64 characters (it is the certificate's common name)".into(),
        );
    }
    let out = match &args.issue.out {
        Some(out) => out.clone(),
        None => {
            check_file_name(&name)
                .map_err(|why| format!("NAME \"{name}\" {why}: give --out FILE-NAME"))?;
            name.clone()
        }
    };
    let made = issue(&args.common, &args.issue, &out, args.days, None, |params| {
        params.distinguished_name = common_name(&name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    })?;
    made.report(&format!("client certificate \"{}\"", made.info.subject));
    println!("In the client's tls.conf (PCP_TLSCONF_PATH):");
    println!("tls-ca-cert-file = {}", made.ca.display());
    println!("tls-client-cert-file = {}", made.crt.display());
    println!("tls-client-key-file = {}", made.key.display());
    Ok(())
}

/// What `issue` wrote.
struct Issued {
    crt: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    info: CertInfo,
    /// The CA's end of validity, when it cut the requested --days short.
    capped: Option<String>,
    /// How the key may be read, for the report ("mode 0600").
    key_access: String,
}

impl Issued {
    /// Says what was written (`what` describes the certificate), then a
    /// blank line before the tls.conf lines.
    fn report(&self, what: &str) {
        println!(
            "wrote {} ({what}, valid until {}, followed by the CA certificate)",
            self.crt.display(),
            self.info.not_after
        );
        println!(
            "wrote {} (its private key, {})",
            self.key.display(),
            self.key_access
        );
        println!("SHA256 fingerprint {}", self.info.sha256);
        if let Some(until) = &self.capped {
            println!("note: the validity was cut short to the CA's own end ({until})");
        }
        println!();
    }
}

/// The local CA, loaded from its files.
struct Ca {
    crt_path: PathBuf,
    /// The CA certificate as it appears in its file (PEM).
    pem: String,
    der: CertificateDer<'static>,
    key: KeyPair,
}

/// Issues a leaf certificate signed by the CA; `shape` sets its names and
/// purposes.
fn issue(
    common: &Common,
    issue: &Issue,
    out: &str,
    days: u32,
    reader: Option<&crate::user::ServiceUser>,
    shape: impl FnOnce(&mut CertificateParams),
) -> Result<Issued> {
    check_file_name(out).map_err(|why| format!("--out \"{out}\" {why}"))?;
    let dir = &common.dir;
    let ca_dir = issue.ca_dir.as_deref().unwrap_or(dir);
    let (crt, key) = (
        dir.join(format!("{out}.crt")),
        dir.join(format!("{out}.key")),
    );
    if same_file(&crt, &ca_dir.join("ca.crt")) || same_file(&key, &ca_dir.join("ca.key")) {
        return Err(format!(
            "--out \"{out}\" would overwrite the CA's own files: choose another name"
        ));
    }
    refuse_existing(&[&crt, &key], common.force)?;
    let ca = load_ca(ca_dir)?;
    let (ca_cert, ca_not_after) = {
        let (_, x509) = X509Certificate::from_der(&ca.der).map_err(|e| {
            format!(
                "CA certificate \"{}\": cannot be decoded ({e})",
                ca.crt_path.display()
            )
        })?;
        (
            issuer_params(&x509, &ca.crt_path)?,
            x509.validity().not_after.timestamp(),
        )
    };
    // Only the names and key identifier of this rebuilt certificate are
    // used (as the issuer); the file's own CA certificate goes into chains.
    let issuer = ca_cert.self_signed(&ca.key).map_err(|e| {
        format!(
            "CA \"{}\": cannot sign with its key ({e})",
            ca.crt_path.display()
        )
    })?;

    let key_pair = generate(common.key_type)?;
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = matches!(
        issuer.params().key_identifier_method,
        KeyIdMethod::PreSpecified(_)
    );
    params.serial_number = Some(serial()?);
    let ca_end = u64::try_from(ca_not_after).unwrap_or(0);
    let (not_before, not_after) = validity(days, Some(ca_end))?;
    let capped = (not_after.as_secs() == ca_end).then(|| CertInfo::of(&ca.der).not_after);
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + not_before;
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + not_after;
    shape(&mut params);
    let cert = params
        .signed_by(&key_pair, &issuer, &ca.key)
        .map_err(|e| format!("cannot make the certificate ({e})"))?;
    check_issued(cert.der(), &ca)?;

    let chain = format!("{}{}", cert.pem(), ca.pem);
    let (key_file, key_access) = match reader {
        Some(user) => (
            Written::shared(&key, key_pair.serialize_pem(), user.gid),
            format!(
                "group {}, mode 0640: readable by user {}, whom pmcd runs as",
                pcp_secure::api::nssdb::password::group_name(user.gid),
                user.name
            ),
        ),
        None => (
            Written::new(&key, key_pair.serialize_pem(), 0o600),
            "mode 0600".to_string(),
        ),
    };
    write_files(
        dir,
        &[key_file, Written::new(&crt, chain, 0o644)],
        common.force,
    )?;
    Ok(Issued {
        crt: absolute(&crt),
        key: absolute(&key),
        ca: absolute(&ca.crt_path),
        info: CertInfo::of(cert.der()),
        capped,
        key_access,
    })
}

fn load_ca(dir: &Path) -> Result<Ca> {
    let crt_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    for path in [&crt_path, &key_path] {
        if !path.exists() {
            return Err(format!(
                "{} does not exist: make the CA first (pcp-secure cert ca --dir {}) or name its directory with --ca-dir",
                path.display(),
                dir.display()
            ));
        }
    }
    let crt_text = path_str(&crt_path)?;
    let der = pcp_secure::api::certs::load_chain("CA certificate", crt_text)
        .map_err(|e| e.to_string())?
        .remove(0);
    let pem = first_pem_block(&crt_path, &der)?;
    let key_der = pcp_secure::api::certs::load_key("CA key", path_str(&key_path)?)
        .map_err(|e| e.to_string())?;
    let key = KeyPair::try_from(&key_der).map_err(|e| {
        format!(
            "CA key \"{}\": cannot be used for signing ({e}); it must be an unencrypted PKCS#8 key (\"BEGIN PRIVATE KEY\"): convert it with openssl pkcs8 -topk8 -nocrypt",
            key_path.display()
        )
    })?;
    let (_, x509) = X509Certificate::from_der(&der).map_err(|e| {
        format!(
            "CA certificate \"{}\": cannot be decoded ({e})",
            crt_path.display()
        )
    })?;
    if x509.tbs_certificate.subject_pki.raw != key.public_key_der().as_slice() {
        return Err(format!(
            "CA key \"{}\" does not belong to the CA certificate \"{}\"",
            key_path.display(),
            crt_path.display()
        ));
    }
    let is_ca = matches!(x509.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !is_ca {
        return Err(format!(
            "\"{}\" is not a CA certificate (no basicConstraints CA:TRUE)",
            crt_path.display()
        ));
    }
    if !x509.validity().is_valid() {
        return Err(format!(
            "CA certificate \"{}\" is not valid now (valid from {} to {})",
            crt_path.display(),
            x509.validity().not_before,
            x509.validity().not_after
        ));
    }
    Ok(Ca {
        crt_path,
        pem,
        der,
        key,
    })
}

/// The text of the first PEM certificate of the CA file, checked to be the
/// certificate loaded from it.
fn first_pem_block(path: &Path, der: &CertificateDer<'_>) -> Result<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = fs::read_to_string(path)
        .map_err(|e| format!("\"{}\": cannot read ({e})", path.display()))?;
    let block = text.find(BEGIN).and_then(|start| {
        text[start..]
            .find(END)
            .map(|len| &text[start..start + len + END.len()])
    });
    match block {
        Some(block)
            if CertificateDer::from_pem_slice(block.as_bytes())
                .ok()
                .as_ref()
                == Some(der) =>
        {
            Ok(format!("{}\n", block.trim_end()))
        }
        _ => Err(format!(
            "CA certificate \"{}\": cannot copy its PEM text",
            path.display()
        )),
    }
}

/// Parameters that reproduce the CA's subject name and key identifier, so
/// that certificates signed with them name the CA as their issuer.
fn issuer_params(x509: &X509Certificate<'_>, path: &Path) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(x509.subject()).ok_or_else(|| {
        format!(
            "CA certificate \"{}\": its subject name ({}) cannot be reproduced here (multi-valued or repeated attributes, or unusual string types)",
            path.display(),
            x509.subject()
        )
    })?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ski = x509
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        });
    // Without a subject key identifier, no authority key identifier is written.
    params.key_identifier_method = match ski {
        Some(id) => KeyIdMethod::PreSpecified(id),
        None => KeyIdMethod::Sha256,
    };
    Ok(params)
}

/// The rcgen form of an X.509 name, when it can be encoded back identically.
fn distinguished_name(name: &X509Name<'_>) -> Option<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    let mut seen = Vec::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let attr = attrs.next()?;
        if attrs.next().is_some() {
            return None;
        }
        let oid: Vec<u64> = attr.attr_type().iter()?.collect();
        if seen.contains(&oid) {
            return None;
        }
        seen.push(oid.clone());
        let value = attr.attr_value();
        let text = std::str::from_utf8(value.data);
        let value = match value.header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.ok()?.to_string()),
            Tag::PrintableString => DnValue::PrintableString(text.ok()?.try_into().ok()?),
            Tag::Ia5String => DnValue::Ia5String(text.ok()?.try_into().ok()?),
            Tag::T61String => DnValue::TeletexString(text.ok()?.try_into().ok()?),
            Tag::BmpString => {
                DnValue::BmpString(rcgen::BmpString::from_utf16be(value.data.to_vec()).ok()?)
            }
            Tag::UniversalString => DnValue::UniversalString(
                rcgen::UniversalString::from_utf32be(value.data.to_vec()).ok()?,
            ),
            _ => return None,
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Some(dn)
}

/// Makes sure the new certificate names the CA as issuer exactly and that
/// the CA certificate's key verifies its signature.
fn check_issued(der: &CertificateDer<'_>, ca: &Ca) -> Result<()> {
    let failed = |why: String| {
        format!(
            "the issued certificate does not chain to \"{}\": {why}",
            ca.crt_path.display()
        )
    };
    let (_, leaf) = X509Certificate::from_der(der).map_err(|e| failed(e.to_string()))?;
    let (_, issuer) = X509Certificate::from_der(&ca.der).map_err(|e| failed(e.to_string()))?;
    if leaf.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(failed(format!(
            "its issuer name is not encoded as the CA's subject ({})",
            issuer.subject()
        )));
    }
    pcp_secure::api::trust::signed_by(der, &ca.der)
        .map_err(|e| failed(format!("bad signature ({e})")))
}

fn generate(key_type: KeyType) -> Result<KeyPair> {
    let alg = match key_type {
        KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
    };
    KeyPair::generate_for(alg).map_err(|e| format!("cannot generate a key ({e})"))
}

/// A random positive 128-bit serial number.
fn serial() -> Result<SerialNumber> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "cannot get random bytes for a serial number".to_string())?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Start and end of validity, as time since the epoch: from a little before
/// now for `days` days, but not past `limit` (seconds since the epoch).
fn validity(days: u32, limit: Option<u64>) -> Result<(Duration, Duration)> {
    if days == 0 || days > MAX_DAYS {
        return Err(format!("--days {days}: give 1 to {MAX_DAYS}"));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_string())?;
    let start = now.saturating_sub(BACKDATE);
    let mut end = Duration::from_secs(now.as_secs() + u64::from(days) * 86_400);
    if let Some(limit) = limit {
        end = end.min(Duration::from_secs(limit));
    }
    Ok((start, end))
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    // X.520 limits a common name to 64 characters; longer names live in the SANs only.
    if name.chars().count() <= 64 {
        dn.push(DnType::CommonName, name);
    }
    dn
}

/// A host name or address as written in certificates (no IPv6 brackets).
fn host_text(host: &str) -> String {
    let host = host.trim();
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_string()
}

/// The subjectAltName for a HOST argument, refusing what no client could
/// ever match.
fn san(host: &str) -> Result<SanType> {
    let text = host_text(host);
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = |why: &str| format!("HOST \"{host}\": {why}");
    if text.contains(':') {
        return Err(bad(
            "not a host name or IP address (give the name without a port)",
        ));
    }
    let checked = text.strip_prefix("*.").unwrap_or(&text);
    rustls::pki_types::DnsName::try_from(checked)
        .map_err(|_| bad("not a valid DNS name or IP address"))?;
    Ok(SanType::DnsName(
        text.as_str()
            .try_into()
            .map_err(|_| bad("not a valid DNS name"))?,
    ))
}

fn check_file_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        Err("is not a plain file name")
    } else {
        Ok(())
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| format!("\"{}\": the path is not valid UTF-8", path.display()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| {
        let dir = p.parent().map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        });
        dir.and_then(|d| fs::canonicalize(d).ok())
            .map(|d| d.join(p.file_name().unwrap_or_default()))
    };
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

fn refuse_existing(paths: &[&Path], force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    for path in paths {
        if fs::symlink_metadata(path).is_ok() {
            return Err(format!(
                "{} already exists; not replacing it (use --force to replace it)",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Who may read a server key: the user pmcd runs as (`--service-user`),
/// when run as root. `None`: only the user running this command (0600).
fn key_reader(named: Option<crate::user::ServiceUser>) -> Result<Option<crate::user::ServiceUser>> {
    let root = crate::user::euid() == 0;
    match named {
        Some(user) if root => Ok(Some(user)),
        Some(user) if user.uid == crate::user::euid() => Ok(None),
        Some(user) => Err(format!(
            "--service-user {}: only root can give a key to another user (you are {})",
            user.name,
            crate::user::ServiceUser::current().name
        )),
        None if root => Ok(crate::user::ServiceUser::parse("pcp").ok()),
        None => Ok(None),
    }
}

/// One file to write: where, what, its final mode and group.
struct Written<'a> {
    path: &'a Path,
    text: String,
    mode: u32,
    /// The group the file is given (its owner stays the writer).
    group: Option<libc::gid_t>,
}

impl<'a> Written<'a> {
    fn new(path: &'a Path, text: String, mode: u32) -> Written<'a> {
        Written {
            path,
            text,
            mode,
            group: None,
        }
    }

    /// A key readable by group `gid` too (mode 0640).
    fn shared(path: &'a Path, text: String, gid: libc::gid_t) -> Written<'a> {
        Written {
            path,
            text,
            mode: 0o640,
            group: Some(gid),
        }
    }
}

/// Writes each file, creating each with its mode (and group). Without
/// `force` an existing file is never touched, and on failure the files
/// written so far are removed. With it, every file is first written beside
/// its target, and only once all are written renamed over them.
fn write_files(dir: &Path, files: &[Written<'_>], force: bool) -> Result<()> {
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(|e| format!("cannot create directory {} ({e})", dir.display()))?;
    }
    let targets: Vec<PathBuf> = files
        .iter()
        .map(|file| {
            if force {
                staging(file.path)
            } else {
                file.path.to_path_buf()
            }
        })
        .collect();
    for (index, file) in files.iter().enumerate() {
        if force {
            let _ = fs::remove_file(&targets[index]);
        }
        if let Err(why) = create_new(&targets[index], file) {
            for done in &targets[..index] {
                let _ = fs::remove_file(done);
            }
            return Err(why);
        }
    }
    if force {
        for (index, file) in files.iter().enumerate() {
            if let Err(e) = fs::rename(&targets[index], file.path) {
                for staged in &targets[index..] {
                    let _ = fs::remove_file(staged);
                }
                return Err(format!("cannot replace {} ({e})", file.path.display()));
            }
        }
    }
    Ok(())
}

/// Where a file replacing `path` is written first.
fn staging(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Creates `path` (which must not exist) with `file`'s text: readable by
/// its owner only until it has its group, then given its final mode.
fn create_new(path: &Path, file: &Written<'_>) -> Result<()> {
    let first_mode = if file.group.is_some() {
        0o600
    } else {
        file.mode
    };
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(first_mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{} already exists; not replacing it (use --force to replace it)",
                path.display()
            ),
            _ => format!("cannot create {} ({e})", path.display()),
        })?;
    let written = out.write_all(file.text.as_bytes()).and_then(|()| {
        if let Some(gid) = file.group {
            std::os::unix::fs::fchown(&out, None, Some(gid))?;
            out.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(file.mode))?;
        }
        out.sync_all()
    });
    if let Err(e) = written {
        drop(out);
        let _ = fs::remove_file(path);
        return Err(format!("cannot write {} ({e})", path.display()));
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_become_ip_or_dns_names() {
        assert!(matches!(san("127.0.0.1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san("::1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san("[::1]"), Ok(SanType::IpAddress(_))));
        assert!(matches!(
            san("collector.example.com"),
            Ok(SanType::DnsName(_))
        ));
        assert!(matches!(san("*.example.com"), Ok(SanType::DnsName(_))));
        assert!(san("host:44321").unwrap_err().contains("port"));
        assert!(san("bad name").is_err());
        assert!(san("").is_err());
    }

    #[test]
    fn file_names_are_plain() {
        assert!(check_file_name("server").is_ok());
        assert!(check_file_name("a/b").is_err());
        assert!(check_file_name("..").is_err());
        assert!(check_file_name("").is_err());
    }

    #[test]
    fn validity_is_bounded() {
        assert!(validity(0, None).is_err());
        assert!(validity(MAX_DAYS + 1, None).is_err());
        let (start, end) = validity(10, Some(1)).unwrap();
        assert_eq!(end, Duration::from_secs(1));
        assert!(start > end);
    }
}
