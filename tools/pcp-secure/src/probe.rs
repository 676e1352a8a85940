//! `pcp-secure probe HOST[:PORT]`: connects to a pmcd the way libpcp does,
//! reports the features its challenge advertises, and when it offers TLS
//! upgrades the connection, reports the negotiated version and suite and
//! the server's certificate, and says whether we trust it. It never asks
//! and never saves anything.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pcp_secure::api::certs::ClientContext;
use pcp_secure::api::certs::{self, provider};
use pcp_secure::api::connection::Deadline;
use pcp_secure::api::connection::Peer;
use pcp_secure::api::connection::{self as handshake, pcp, read_ack, read_greeting, send_creds};
use pcp_secure::api::settings::{tls_conf_path, Role, TlsConf};
use pcp_secure::api::trust::CertInfo;
use pcp_secure::api::trust::TrustStore;
use pcp_secure::api::trust::{Assessment, Why};
use pcp_secure::api::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, Connection, DigitallySignedStruct, SignatureScheme};

use crate::verify::cert_error_text;

/// pmcd's well-known port.
const DEFAULT_PORT: u16 = 44321;

/// Exit status: pmcd offers TLS and we trust its certificate.
const EXIT_TRUSTED: u8 = 0;
/// Exit status: connection or protocol failure.
const EXIT_ERROR: u8 = 1;
/// Exit status: pmcd does not offer TLS.
const EXIT_NO_TLS: u8 = 2;
/// Exit status: TLS works but we do not trust the certificate (or it changed).
const EXIT_UNTRUSTED: u8 = 3;

/// Arguments of `pcp-secure probe`.
#[derive(clap::Args)]
#[command(after_help = "\
The trust verdict is the one pminfo with libpcp_secure would reach with your
tls.conf (PCP_TLSCONF_PATH) and trust store (PCP_SECURE_DB_PATH, ~/.pcp/tls),
without asking and without saving anything.
Exit status: 0 TLS offered and the certificate trusted; 1 connection or
protocol failure; 2 pmcd does not offer TLS; 3 the certificate is not
trusted (or has changed since it was saved).")]
pub(crate) struct Args {
    /// The pmcd: HOST, HOST:PORT, [ADDRESS]:PORT (port 44321 if not given).
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_target)]
    target: Target,
    /// Seconds to wait for the connection, and again for the handshakes.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
    timeout: f64,
}

/// A number of seconds: finite, above 0 and at most an hour.
pub(crate) fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(s),
        _ => Err(format!(
            "\"{text}\" is not a number of seconds above 0 and at most 3600"
        )),
    }
}

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Host name or address as typed, without brackets.
    pub(crate) host: String,
    /// The TCP port (44321 when not given).
    pub(crate) port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `HOST`, `HOST:PORT`, `[ADDR]:PORT`, a bare IPv6 address, with an
/// optional `pcp://` or `pcps://` in front.
pub(crate) fn parse_target(text: &str) -> Result<Target, String> {
    let text = text
        .strip_prefix("pcps://")
        .or_else(|| text.strip_prefix("pcp://"))
        .unwrap_or(text)
        .trim_end_matches('/');
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("\"{p}\" is not a port number"))
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("\"{text}\": missing ']'"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, port(p)?),
            None if after.is_empty() => (host, DEFAULT_PORT),
            None => return Err(format!("\"{text}\": unexpected text after ']'")),
        }
    } else if text.matches(':').count() == 1 {
        let (host, p) = text.split_once(':').expect("one colon");
        (host, port(p)?)
    } else {
        (text, DEFAULT_PORT)
    };
    if host.is_empty() {
        return Err("no host name given".into());
    }
    Ok(Target {
        host: host.to_string(),
        port,
    })
}

/// Runs the subcommand.
pub(crate) fn main(args: Args) -> ExitCode {
    let timeout = Duration::from_secs_f64(args.timeout.max(0.1));
    match probe(&args.target, timeout) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            println!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The names of the connection feature bits, lowest bit first.
const FEATURES: [&str; 12] = [
    "SECURE",
    "COMPRESS",
    "AUTH",
    "CREDS_REQD",
    "SECURE_ACK",
    "NO_NSS_INIT",
    "CONTAINER",
    "CERT_REQD",
    "BAD_LABEL",
    "LABELS",
    "HIGHRES",
    "DESCS",
];

fn feature_names(features: i32) -> String {
    let names: Vec<&str> = FEATURES
        .iter()
        .enumerate()
        .filter(|(bit, _)| features & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(" ")
    }
}

/// A status PCP sends, in words.
pub(crate) fn status_text(status: i32) -> String {
    let text = match status {
        pcp::PM_ERR_NOTCONN => "Not Connected".to_string(),
        pcp::PM_ERR_NEEDCLIENTCERT => "PMCD requires a client certificate".to_string(),
        pcp::PM_ERR_TLS => "TLS protocol failure".to_string(),
        pcp::PM_ERR_IPC => "IPC protocol failure".to_string(),
        pcp::PM_ERR_TIMEOUT => "Timeout waiting for a response from PMCD".to_string(),
        -12387 => "No permission to perform requested operation".to_string(),
        s if (-4095..0).contains(&s) => io::Error::from_raw_os_error(-s).to_string(),
        _ => return format!("status {status}"),
    };
    format!("{text} (status {status})")
}

/// A TCP connection to `target`, trying each of its addresses in turn.
pub(crate) fn connect(target: &Target, timeout: Duration) -> Result<TcpStream, String> {
    let start = Instant::now();
    let addrs: Vec<_> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{}\": {e}", target.host))?
        .collect();
    let mut errors = Vec::new();
    for addr in &addrs {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            errors.push(format!("{addr}: timed out"));
            break;
        }
        match TcpStream::connect_timeout(addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    Err(format!(
        "cannot connect to {target}: {}",
        if errors.is_empty() {
            "no address".to_string()
        } else {
            errors.join("; ")
        }
    ))
}

/// What a pmcd offered and what the secure upgrade found: the one PCP
/// exchange that `probe` reports and `trust add` fetches a certificate by.
pub(crate) struct Offer {
    /// The PCP protocol version of pmcd's greeting.
    pub(crate) version: u8,
    /// The connection features it advertises.
    pub(crate) features: i32,
    /// How far the secure upgrade went.
    pub(crate) upgrade: Upgrade,
}

/// How far the secure upgrade went.
pub(crate) enum Upgrade {
    /// pmcd does not offer TLS.
    NotOffered,
    /// pmcd refused to start TLS after our credentials: its status.
    Refused(i32),
    /// The TLS handshake was run (it may have failed: see its outcome).
    Done(TlsResult),
}

/// Connects to `target` the way libpcp does: reads pmcd's greeting, sends
/// the credentials asking for TLS, reads the secure-ack, and runs a TLS
/// handshake that accepts any certificate but keeps the chain (handshake
/// signatures are verified: the server holds the certificate's key).
pub(crate) fn exchange(
    fd: i32,
    target: &Target,
    timeout: Duration,
    client: &ClientSettings,
) -> Result<Offer, String> {
    let deadline = Deadline::after(timeout);

    // [1] The challenge: a 20-byte error PDU whose datum holds the features.
    let greeting = read_greeting(fd, deadline).map_err(|e| match e {
        Error::ServerStatus(status) => {
            format!("pmcd refused the connection: {}", status_text(status))
        }
        Error::Protocol(why) => format!("{target} is not a pmcd: {why}"),
        e => format!("no PCP challenge from {target}: {e}"),
    })?;
    let features = i32::from(greeting.features);
    let offer = |upgrade| Offer {
        version: greeting.version,
        features,
        upgrade,
    };
    if features & pcp::PDU_FLAG_SECURE == 0 {
        return Ok(offer(Upgrade::NotOffered));
    }

    // [2] Our credentials: ask for TLS, as libpcp does.
    let flags =
        pcp::PDU_FLAG_SECURE | (features & (pcp::PDU_FLAG_SECURE_ACK | pcp::PDU_FLAG_CERT_REQD));
    send_creds(fd, flags, deadline).map_err(|e| e.to_string())?;

    // [3] The secure-ack status.
    if flags & pcp::PDU_FLAG_SECURE_ACK != 0 {
        let status = read_ack(fd, deadline).map_err(|e| format!("secure-ack: {e}"))?;
        if status != 0 {
            return Ok(offer(Upgrade::Refused(status)));
        }
    }

    // [4] TLS, accepting any certificate but keeping it.
    // The settings' crypto provider; an unusable one (a bad `tls-groups`,
    // `tls-fips` this build cannot honour) is the error, naming the setting.
    let provider = client.provider.clone()?;
    Ok(offer(Upgrade::Done(tls(
        fd, target, client, provider, deadline,
    ))))
}

fn probe(target: &Target, timeout: Duration) -> Result<u8, String> {
    let stream = connect(target, timeout)?;
    let fd = stream.as_raw_fd();
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    println!("pmcd {target} ({peer})");
    let client = ClientSettings::load();
    let offer = exchange(fd, target, timeout, &client)?;
    let features = offer.features;
    println!("  PCP protocol version {}", offer.version);
    println!("  features: {} ({features:#06x})", feature_names(features));
    let result = match offer.upgrade {
        Upgrade::NotOffered => {
            println!(
                "TLS: pmcd {target} does not offer TLS (its tls.conf has no usable tls-cert-file and tls-key-file)"
            );
            return Ok(EXIT_NO_TLS);
        }
        Upgrade::Refused(status) => {
            println!(
                "TLS: offered, but pmcd refused to start it: {}",
                status_text(status)
            );
            return Ok(EXIT_ERROR);
        }
        Upgrade::Done(result) => result,
    };
    if features & pcp::PDU_FLAG_CERT_REQD != 0 {
        println!("  pmcd requires a client certificate (pmcd -Q or tls-verify-clients)");
    }
    let chain = result.chain.lock().map(|c| c.clone()).unwrap_or_default();
    let mut code = EXIT_TRUSTED;
    match &result.outcome {
        Ok(description) => println!("TLS: {description}"),
        Err(why) => {
            println!("TLS: handshake failed: {why}");
            code = EXIT_ERROR;
        }
    }
    if result.asked {
        println!(
            "  pmcd asked for a client certificate; {}",
            match &client.identity {
                Ok(Some(_)) => format!(
                    "we presented tls-client-cert-file \"{}\"",
                    client.conf.client_cert_file.as_deref().unwrap_or("?")
                ),
                Ok(None) => "we have none (tls-client-cert-file is not set)".to_string(),
                Err(e) => format!("ours is unusable: {e}"),
            }
        );
    }
    if chain.is_empty() {
        println!("server certificate: none received");
        return Ok(EXIT_ERROR);
    }
    println!("server certificate:");
    for line in CertInfo::of(&chain[0]).lines() {
        println!("  {line}");
    }
    for (i, cert) in chain.iter().enumerate().skip(1) {
        println!("  chain[{i}]: {}", CertInfo::of(cert).subject);
    }
    let (trusted, verdict) = decide(target, &chain, &client);
    println!("trust: {verdict}");
    if code == EXIT_TRUSTED && !trusted {
        code = EXIT_UNTRUSTED;
    }
    Ok(code)
}

/// The client's settings, loaded as libpcp_secure's client would.
pub(crate) struct ClientSettings {
    conf: TlsConf,
    /// The tls.conf, if one was found and read.
    path: Option<PathBuf>,
    /// Why the settings are unusable, or the context a client would use.
    context: Result<ClientContext, String>,
    /// Our certificate and key, if configured.
    identity: Result<Option<Arc<CertifiedKey>>, String>,
    /// The crypto provider of these settings (`tls-ciphers`, `tls-groups`,
    /// `tls-fips`), or why there is none.
    provider: Result<Arc<CryptoProvider>, String>,
}

impl ClientSettings {
    /// Reads the client's tls.conf (PCP_TLSCONF_PATH) and builds what a
    /// client would; problems are kept, for the report.
    pub(crate) fn load() -> ClientSettings {
        let path = tls_conf_path();
        let (conf, read_error) = match &path {
            Some(p) if p.exists() => match TlsConf::load(p) {
                Ok(conf) => (conf, None),
                Err(e) => (
                    TlsConf::default(),
                    Some(format!("\"{}\": cannot read ({e})", p.display())),
                ),
            },
            _ => (TlsConf::default(), None),
        };
        let path = path.filter(|p| p.exists());
        let provider = provider(&conf).map_err(|e| match &path {
            Some(p) => format!("{e} (in {})", p.display()),
            None => e.to_string(),
        });
        let context = match read_error {
            Some(e) => Err(e),
            None => ClientContext::build(&conf, path.clone()).map_err(|e| match &path {
                Some(p) => format!("{e} (in {})", p.display()),
                None => e.to_string(),
            }),
        };
        let identity = match (&conf.client_cert_file, &conf.client_key_file) {
            (Some(cert), Some(key)) => certs::load_chain("tls-client-cert-file", cert)
                .and_then(|chain| Ok((chain, certs::load_key("tls-client-key-file", key)?)))
                .map_err(|e| e.to_string())
                .and_then(|(chain, der)| {
                    certs::certified_key(chain, der)
                        .map(|k| Some(Arc::new(k)))
                        .map_err(|e| {
                            e.describe("tls-client-key-file", key, "tls-client-cert-file", cert)
                        })
                }),
            _ => Ok(None),
        };
        ClientSettings {
            conf,
            path,
            context,
            identity,
            provider,
        }
    }

    fn conf_name(&self) -> String {
        self.path
            .as_ref()
            .map(|p| format!("\"{}\"", p.display()))
            .unwrap_or_else(|| "the file named by PCP_TLSCONF_PATH".into())
    }
}

/// What the TLS step found.
pub(crate) struct TlsResult {
    /// "TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519MLKEM768", or why the
    /// handshake failed.
    pub(crate) outcome: Result<String, String>,
    /// The certificates the server presented, leaf first.
    pub(crate) chain: Arc<Mutex<Vec<CertificateDer<'static>>>>,
    /// Whether the server asked for a client certificate.
    pub(crate) asked: bool,
}

fn tls(
    fd: i32,
    target: &Target,
    client: &ClientSettings,
    provider: Arc<CryptoProvider>,
    deadline: Deadline,
) -> TlsResult {
    let chain = Arc::new(Mutex::new(Vec::new()));
    let scope = pcp_secure::api::trust::HandshakeScope::enter();
    let mut result = TlsResult {
        outcome: Err(String::new()),
        chain: chain.clone(),
        asked: false,
    };
    let recorder = Arc::new(Recorder {
        chain,
        provider: provider.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(recorder)
                .with_client_cert_resolver(Arc::new(pcp_secure::api::certs::Identity::new(
                    client.identity.clone().ok().flatten(),
                    "the client certificate",
                )))
        });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            result.outcome = Err(format!("TLS settings: {e}"));
            return result;
        }
    };
    let name = match ServerName::try_from(target.host.clone()) {
        Ok(n) => n,
        Err(e) => {
            result.outcome = Err(format!(
                "\"{}\" is not a host name TLS can use ({e})",
                target.host
            ));
            return result;
        }
    };
    let mut conn = match ClientConnection::new(Arc::new(config), name) {
        Ok(c) => Connection::Client(c),
        Err(e) => {
            result.outcome = Err(format!("cannot start TLS: {e}"));
            return result;
        }
    };
    let peer = Peer {
        role: Role::Client,
        name: target.host.clone(),
        service: "pmcd",
        trust: client
            .context
            .as_ref()
            .map(|c| c.trust_source.clone())
            .unwrap_or_default(),
        conf: client.conf_name(),
        sent_cert: false,
    };
    let outcome = handshake::drive(fd, &mut conn, deadline, &Duration::default);
    result.asked = scope.asked.load(Ordering::Relaxed);
    let peer = Peer {
        sent_cert: result.asked && matches!(client.identity, Ok(Some(_))),
        ..peer
    };
    let outcome = outcome.and_then(|()| {
        if result.asked && conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            // TLS 1.3: the server judges our certificate after our side of
            // the handshake; its verdict is its first record.
            handshake::await_verdict(fd, &mut conn, Deadline::after(Duration::from_secs(2)))
        } else {
            Ok(())
        }
    });
    result.outcome = match outcome {
        Ok(()) => Ok(handshake::describe(&conn)),
        Err(failure) => Err(failure.explain(&peer).to_string()),
    };
    conn.send_close_notify();
    let _ = handshake::flush(fd, &mut conn, Deadline::after(Duration::from_millis(500)));
    result
}

/// Accepts any server certificate but records the chain; handshake
/// signatures are still verified, so the server did prove it holds the key.
#[derive(Debug)]
struct Recorder {
    chain: Arc<Mutex<Vec<CertificateDer<'static>>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            *chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        pcp_secure::api::trust::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        pcp_secure::api::trust::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether a libpcp_secure client with these settings would accept the
/// chain for `host` without asking, and the verdict in words: the library's
/// own decision (`ClientContext::judge`), minus the question.
fn decide(
    target: &Target,
    chain: &[CertificateDer<'static>],
    client: &ClientSettings,
) -> (bool, String) {
    let host = target.host.as_str();
    let key = pcp_secure::api::trust::server_key(host, Some(target.port));
    let ctx = match &client.context {
        Ok(ctx) => ctx,
        Err(e) => {
            return (
                false,
                format!("NOT trusted: the client settings are unusable: {e}"),
            )
        }
    };
    let source = &ctx.trust_source;
    let info = CertInfo::of(&chain[0]);
    let names = if info.names.is_empty() {
        "(none)".to_string()
    } else {
        info.names.join(", ")
    };
    let file = TrustStore::for_user()
        .map(|s| s.file().display().to_string())
        .unwrap_or_else(|| "(no trust store: neither PCP_SECURE_DB_PATH nor HOME is set)".into());
    let name_mismatch = || {
        let mut s = format!(
            "NOT trusted: the domain name \"{host}\" does not match the name(s) on the certificate: {names}; pminfo would ask whether to accept it anyway"
        );
        if std::env::var_os("PCP_ALLOW_BAD_CERT_DOMAIN").is_some() {
            s.push_str(" (PCP_ALLOW_BAD_CERT_DOMAIN is set: it would accept it without asking)");
        }
        s
    };
    match ctx.judge(host, Some(target.port), chain) {
        Err(e) => (false, format!("NOT trusted: {e}")),
        Ok(Assessment::Trusted(Why::ChainsToCa)) => (true, format!("trusted (chains to {source})")),
        Ok(Assessment::Trusted(Why::ListedAsCa)) => (
            true,
            format!("trusted (chains to {source}, which lists the certificate itself)"),
        ),
        Ok(Assessment::Trusted(Why::Saved)) => {
            let own_entry = TrustStore::for_user()
                .and_then(|store| store.load().ok())
                .is_some_and(|entries| TrustStore::find(&entries, host, Some(target.port)).is_some());
            let saved_as = if own_entry {
                key.clone()
            } else {
                format!(
                    "{}, whose entry holds this very certificate",
                    pcp_secure::api::trust::server_key(host, None)
                )
            };
            (true, format!("trusted (saved in {file} for {saved_as})"))
        }
        Ok(Assessment::Refused(e)) => (
            false,
            format!("NOT trusted: {} (checked against {source})", cert_error_text(&e)),
        ),
        Ok(Assessment::Changed(saved)) => (false, format!(
            "CHANGED since saved in {file}: the certificate saved for {key} has SHA256 fingerprint {saved}, the server now presents {}; pminfo refuses it",
            info.sha256
        )),
        Ok(Assessment::NameMismatch(_)) => (false, name_mismatch()),
        Ok(Assessment::UntrustedIssuer(name_error)) => {
            let mut s = format!(
                "NOT trusted: issuer of the certificate is not trusted (trusted CAs come from {source}) and it is not saved for {key} in {file}; pminfo would ask whether to accept and save it (or: pcp-secure trust add {key})"
            );
            if std::env::var_os("PCP_ALLOW_SERVER_SELF_CERT").is_some() {
                s.push_str(" (PCP_ALLOW_SERVER_SELF_CERT is set: it would accept and save it without asking)");
            }
            if name_error.is_some() {
                s.push_str(&format!("; also, it does not list \"{host}\" (it lists {names})"));
            }
            (false, s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, port: u16) -> Target {
        Target {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn targets() {
        assert_eq!(parse_target("localhost"), Ok(t("localhost", 44321)));
        assert_eq!(parse_target("h.example:4000"), Ok(t("h.example", 4000)));
        assert_eq!(parse_target("[::1]:4000"), Ok(t("::1", 4000)));
        assert_eq!(parse_target("[::1]"), Ok(t("::1", 44321)));
        assert_eq!(parse_target("::1"), Ok(t("::1", 44321)));
        assert_eq!(parse_target("pcps://h:5"), Ok(t("h", 5)));
        assert!(parse_target("h:x").is_err());
        assert!(parse_target(":44321").is_err());
        assert_eq!(t("::1", 1).to_string(), "[::1]:1");
    }

    #[test]
    fn feature_words() {
        assert_eq!(
            feature_names(0x0e55),
            "SECURE AUTH SECURE_ACK CONTAINER LABELS HIGHRES DESCS"
        );
    }
}
