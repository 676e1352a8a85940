//! The certificate store: the server context built from pmcd's `tls.conf`
//! and the client context built from the user's, each built once and shared
//! by every connection of the process. Together with the session table this
//! is the library's only shared state.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use rustls::client::WebPkiServerVerifier;
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, SignatureScheme,
};

use crate::error::{Error, Result};
use crate::log;
use crate::tls::certs;
use crate::tls::config::{self, TlsConf};
use crate::tls::suites;
use crate::trust::store::TrustStore;
use crate::trust::verify;
use crate::trust::version1;

/// Everything a server needs to accept TLS clients.
#[derive(Debug)]
pub struct ServerContext {
    /// Client certificates verified when offered (if a CA is configured).
    optional: Arc<ServerConfig>,
    /// Client certificates required, or why that cannot be done.
    required: std::result::Result<Arc<ServerConfig>, String>,
    /// `tls-verify-clients = true`: every client must present a certificate.
    verify_clients: bool,
    /// The certificate served (the chain's first).
    leaf: Option<CertificateDer<'static>>,
    /// The CA certificate that issued it, when known (for the metrics).
    ca: Option<CertificateDer<'static>>,
    /// The key exchange and crypto module, for the log ("key exchange
    /// X25519MLKEM768:X25519:..., AWS-LC (not FIPS)").
    crypto: String,
    /// Where the served certificate comes from, for messages
    /// ("certificate \"/etc/pcp/tls/server.crt\"", or the nickname of
    /// tls-nssdb's database).
    served: String,
}

impl ServerContext {
    /// Builds the context from the server's settings; every error names the
    /// setting and file at fault.
    pub fn build(conf: &TlsConf) -> Result<ServerContext> {
        let provider = suites::provider(conf)?;
        let (identity, db_cas) = match crate::nssdb::conf::server(conf)? {
            Some((key, cas)) => (Arc::new(key), cas),
            None => {
                let identity = pem_identity(conf)?;
                if let (Some(leaf), Some(file)) = (identity.cert.first(), &conf.cert_file) {
                    let what = format!("tls-cert-file \"{file}\"");
                    if let Some(warning) = version1::warning(leaf, &what, version1::Role::Server) {
                        log::warning!("{warning}");
                    }
                }
                (Arc::new(identity), Vec::new())
            }
        };
        let anchors =
            match certs::load_roots(conf.ca_cert_file.as_deref(), conf.ca_cert_dir.as_deref())? {
                Some(anchors) => Some(anchors),
                None if !db_cas.is_empty() => Some(certs::Anchors::trusting(db_cas)),
                None => None,
            };
        let crls = anchors.as_ref().map(|a| a.crls.clone()).unwrap_or_default();
        let cas = anchors.as_ref().map(|a| a.cas.clone()).unwrap_or_default();
        let roots = anchors.map(|a| a.roots);
        let key_log = crate::tls::keylog::from_env();

        let make = |verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>| -> Result<Arc<ServerConfig>> {
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(rustls::ALL_VERSIONS)
                .map_err(|e| Error::Config(format!("TLS settings: {e}")))?;
            let builder = match verifier {
                Some(v) => builder.with_client_cert_verifier(v),
                None => builder.with_no_client_auth(),
            };
            let mut config = builder.with_cert_resolver(Arc::new(FixedIdentity(identity.clone())));
            if let Some(key_log) = &key_log {
                config.key_log = key_log.clone();
            }
            suites::check_fips(conf, config.fips(), "server")?;
            Ok(Arc::new(config))
        };
        let verifier = |roots: RootCertStore,
                        optional: bool|
         -> std::result::Result<
            Arc<dyn rustls::server::danger::ClientCertVerifier>,
            String,
        > {
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .with_crls(crls.iter().cloned())
                    .allow_unknown_revocation_status();
            let builder = if optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            let webpki = builder.build().map_err(|e| e.to_string())?;
            Ok(Arc::new(crate::tls::client_auth::ClientAuth::new(
                webpki,
                cas.clone(),
                crls.clone(),
                provider.signature_verification_algorithms,
            )))
        };

        let optional = match &roots {
            Some(r) => make(Some(verifier(r.clone(), true).map_err(Error::Config)?))?,
            None => make(None)?,
        };
        let required_roots = match roots {
            Some(r) => Ok(r),
            None => {
                let system = certs::system_roots();
                if system.is_empty() {
                    Err("client certificates are required but neither tls-ca-cert-file nor tls-ca-cert-dir is set to verify them".to_string())
                } else {
                    Ok(system)
                }
            }
        };
        let required = required_roots
            .and_then(|r| verifier(r, false))
            .and_then(|v| make(Some(v)).map_err(|e| e.to_string()));
        let leaf = identity.cert.first().cloned();
        Ok(ServerContext {
            optional,
            required,
            verify_clients: conf.verify_clients(),
            ca: issuer(&identity.cert, conf.ca_cert_file.as_deref()),
            leaf,
            crypto: suites::summary(&provider),
            served: identity_source(conf),
        })
    }

    /// Where the served certificate comes from ("certificate \"FILE\"" of
    /// tls-cert-file, or "certificate \"NICK\" of NSS database \"DB\"").
    pub fn served(&self) -> &str {
        &self.served
    }

    /// Publishes the served certificate in the TLS metrics.
    fn publish(&self) {
        if let Some(leaf) = &self.leaf {
            crate::metrics::record(crate::metrics::Event::Certificate {
                leaf,
                ca: self.ca.as_deref(),
            });
        }
    }

    /// A warning when the served certificate has expired or expires within
    /// 30 days (clients will refuse it, or soon will).
    fn expiry_warning(&self) -> Option<String> {
        let leaf = self.leaf.as_ref()?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        let left = cert.validity().not_after.timestamp()
            - SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs() as i64;
        let subject = cert.subject().to_string();
        if left < 0 {
            Some(format!(
                "the served certificate \"{subject}\" has expired: clients refuse it; renew it (the files are looked at again when they change)"
            ))
        } else if left < 30 * 86_400 {
            Some(format!(
                "the served certificate \"{subject}\" expires in {} day(s); renew it (the files are looked at again when they change, no restart needed)",
                left / 86_400
            ))
        } else {
            None
        }
    }

    /// A new server connection; `require_cert` makes a client certificate
    /// mandatory.
    pub fn connection(&self, require_cert: bool) -> Result<ServerConnection> {
        let config = if require_cert || self.verify_clients {
            self.required.clone().map_err(Error::Config)?
        } else {
            self.optional.clone()
        };
        ServerConnection::new(config).map_err(|e| Error::Tls(format!("cannot start TLS: {e}")))
    }

    /// True when `tls-verify-clients = true` was configured.
    pub(crate) fn verify_clients(&self) -> bool {
        self.verify_clients
    }

    /// The key-exchange groups and crypto module the server uses, as the
    /// log states them.
    pub fn crypto(&self) -> &str {
        &self.crypto
    }
}

/// The CA certificate that issued the first of `chain`: the chain's next
/// one, else the certificate of `ca_file` whose subject is the first's
/// issuer (a file that cannot be read was reported when the roots were
/// loaded).
fn issuer(
    chain: &[CertificateDer<'static>],
    ca_file: Option<&str>,
) -> Option<CertificateDer<'static>> {
    if let Some(next) = chain.get(1) {
        return Some(next.clone());
    }
    let (_, leaf) = x509_parser::parse_x509_certificate(chain.first()?).ok()?;
    let cas = certs::load_chain("tls-ca-cert-file", ca_file?).ok()?;
    cas.into_iter().find(|ca| {
        x509_parser::parse_x509_certificate(ca)
            .is_ok_and(|(_, c)| c.subject().as_raw() == leaf.issuer().as_raw())
    })
}

/// The server's certificate and key from `tls-cert-file` and `tls-key-file`.
fn pem_identity(conf: &TlsConf) -> Result<CertifiedKey> {
    let cert_file = conf
        .cert_file
        .as_deref()
        .ok_or_else(|| Error::Config("neither tls-cert-file nor tls-nssdb is set".into()))?;
    let key_file = conf.key_file.as_deref().ok_or_else(|| {
        Error::Config(format!(
            "tls-key-file is not set (tls-cert-file is \"{cert_file}\")"
        ))
    })?;
    let chain = certs::load_chain("tls-cert-file", cert_file)?;
    let key = certs::load_key("tls-key-file", key_file)?;
    certs::certified_key(chain, key).map_err(|e| {
        Error::Config(e.describe("tls-key-file", key_file, "tls-cert-file", cert_file))
    })
}

/// The server's one certificate chain and key, whatever the client asks for.
#[derive(Debug)]
struct FixedIdentity(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedIdentity {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Everything a client needs to connect to TLS servers.
#[derive(Debug)]
pub struct ClientContext {
    base: Arc<ClientConfig>,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    anchors: Arc<certs::Anchors>,
    identity: Option<Arc<CertifiedKey>>,
    /// Where `identity` comes from, for messages.
    identity_source: String,
    /// One configuration per host, kept so that sessions can be resumed
    /// (rustls resumes only with the same verifier and resolver objects).
    /// A host that aborts resumption gets one that never offers it.
    /// The flag says whether it may still offer resumption.
    per_host: Mutex<HashMap<String, (Arc<ClientConfig>, bool)>>,
    /// Where trust comes from, for messages ("tls-ca-cert-file \"/x\"").
    pub trust_source: String,
    /// The `tls.conf` the context was built from, if any.
    pub conf_path: Option<PathBuf>,
    /// The key exchange and crypto module ("key exchange
    /// X25519MLKEM768:X25519:..., AWS-LC (not FIPS)").
    pub crypto: String,
}

/// Our client certificate (if any); records in the current handshake's
/// scope that the server asked for one.
#[derive(Debug)]
pub struct Identity {
    /// The certificate and key presented when asked.
    key: Option<Arc<CertifiedKey>>,
    /// What presenting an X.509 version 1 certificate logs each time.
    warning: Option<String>,
}

impl Identity {
    /// Presents `key` when asked; `source` says where it comes from
    /// ("tls-client-cert-file \"F\"", or the NSS database), for the
    /// warning a version 1 certificate logs.
    pub fn new(key: Option<Arc<CertifiedKey>>, source: &str) -> Identity {
        let warning = key
            .as_ref()
            .and_then(|k| k.cert.first())
            .and_then(|leaf| version1::warning(leaf, source, version1::Role::Client));
        Identity { key, warning }
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        if let Some(scope) = verify::HandshakeScope::current() {
            scope.asked.store(true, Ordering::Relaxed);
        }
        if let Some(warning) = &self.warning {
            log::warning!("{warning}");
        }
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

impl ClientContext {
    /// Builds the context from the client's settings.
    pub fn build(conf: &TlsConf, conf_path: Option<PathBuf>) -> Result<ClientContext> {
        let provider = suites::provider(conf)?;
        let (anchors, trust_source) =
            match certs::load_roots(conf.ca_cert_file.as_deref(), conf.ca_cert_dir.as_deref())? {
                Some(a) => {
                    let source = match (&conf.ca_cert_file, &conf.ca_cert_dir) {
                        (Some(f), _) => format!("tls-ca-cert-file \"{f}\""),
                        (None, Some(d)) => format!("tls-ca-cert-dir \"{d}\""),
                        (None, None) => unreachable!("roots come from a setting"),
                    };
                    (a, source)
                }
                None => (
                    certs::Anchors::of(certs::system_roots()),
                    "the system trust store (no tls-ca-cert-file or tls-ca-cert-dir set)"
                        .to_string(),
                ),
            };
        let (anchors, trust_source) = with_user_cas(anchors, trust_source);
        let pem_identity_set = conf.client_cert_file.is_some() || conf.client_key_file.is_some();
        let nss = crate::nssdb::conf::client(conf, !pem_identity_set)?;
        let (anchors, trust_source) = match &nss {
            Some(nss) => with_nss_trust(anchors, trust_source, nss),
            None => (anchors, trust_source),
        };
        let identity_source = match (&conf.client_cert_file, &nss) {
            (Some(file), _) => format!("tls-client-cert-file \"{file}\""),
            (None, Some(nss)) => format!("the client certificate of NSS database \"{}\"", nss.spec),
            (None, None) => String::new(),
        };
        let identity = match (
            conf.client_cert_file.as_deref(),
            conf.client_key_file.as_deref(),
        ) {
            (Some(cert), Some(key)) => {
                let chain = certs::load_chain("tls-client-cert-file", cert)?;
                let der = certs::load_key("tls-client-key-file", key)?;
                Some(Arc::new(certs::certified_key(chain, der).map_err(|e| {
                    Error::Config(e.describe(
                        "tls-client-key-file",
                        key,
                        "tls-client-cert-file",
                        cert,
                    ))
                })?))
            }
            (Some(cert), None) => {
                return Err(Error::Config(format!(
                    "tls-client-cert-file \"{cert}\" is set but tls-client-key-file is not"
                )))
            }
            (None, Some(key)) => {
                return Err(Error::Config(format!(
                    "tls-client-key-file \"{key}\" is set but tls-client-cert-file is not"
                )))
            }
            (None, None) => nss.and_then(|n| n.identity),
        };
        let webpki = match verify::webpki(anchors.roots.clone(), &anchors.crls, &provider) {
            Ok(v) => v,
            // No trust anchor at all (an empty system store): every server
            // is then "untrusted", and the trust store and prompt decide.
            Err(_) => {
                verify::webpki(RootCertStore::empty(), &[], &provider).map_err(Error::Config)?
            }
        };
        let base = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|e| Error::Config(format!("TLS settings: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(webpki.clone())
            .with_no_client_auth();
        let mut base = base;
        suites::check_fips(conf, base.fips(), "client")?;
        if let Some(key_log) = crate::tls::keylog::from_env() {
            base.key_log = key_log;
        }
        base.resumption = if config::env::through_pmproxy() {
            // Through pmproxy's relay a refused resumption could not be
            // retried (the relay's preamble names a port only libpcp knows).
            Resumption::disabled()
        } else {
            Resumption::store(Arc::new(WatchedSessions {
                sessions: rustls::client::ClientSessionMemoryCache::new(256),
            }))
        };
        Ok(ClientContext {
            base: Arc::new(base),
            webpki,
            provider: provider.clone(),
            anchors: Arc::new(anchors),
            identity,
            identity_source,
            per_host: Mutex::new(HashMap::new()),
            trust_source,
            conf_path,
            crypto: suites::summary(&provider),
        })
    }

    /// What a connection to `host` on `port` would decide about `chain`
    /// (leaf first), without asking anyone and without saving anything.
    pub fn judge(
        &self,
        host: &str,
        port: Option<u16>,
        chain: &[CertificateDer<'static>],
    ) -> Result<verify::Assessment> {
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| Error::Tls("the server sent no certificate".into()))?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            Error::Tls(format!(
                "host name \"{host}\" cannot be checked against a certificate ({e})"
            ))
        })?;
        let verifier = verify::PcpServerVerifier::new(
            self.webpki.clone(),
            self.provider.clone(),
            self.anchors.clone(),
            host,
            port,
        );
        Ok(verifier.assess(leaf, rest, &name, &[], UnixTime::now()))
    }

    /// From now on, connections to `host` on `port` never offer to resume
    /// a session (stock pmcd and pmproxy abort every resumption attempt
    /// with a fatal `internal_error` alert). Returns false when that was
    /// already so.
    pub(crate) fn stop_resuming(&self, host: &str, port: Option<u16>) -> bool {
        let key = crate::trust::store::server_key(host, port);
        let mut per_host = lock(&self.per_host);
        let Some(config) = per_host.get(&key) else {
            return false;
        };
        if !config.1 {
            return false;
        }
        let mut config = (*config.0).clone();
        config.resumption = Resumption::disabled();
        per_host.insert(key, (Arc::new(config), false));
        true
    }

    /// True when a client certificate is configured.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// A new client connection to `name` (`host` as the user typed it, on
    /// `port` when known: the configuration, its verifier and the trust
    /// store entry are per host and port), with the scope in which this
    /// handshake's verifier and resolver record what they learn (keep it
    /// until the handshake is over).
    pub(crate) fn connection(
        &self,
        name: ServerName<'static>,
        host: &str,
        port: Option<u16>,
    ) -> Result<(ClientConnection, verify::HandshakeScope)> {
        let config = {
            let mut per_host = lock(&self.per_host);
            per_host
                .entry(crate::trust::store::server_key(host, port))
                .or_insert_with(|| {
                    let mut config = (*self.base).clone();
                    config.client_auth_cert_resolver =
                        Arc::new(Identity::new(self.identity.clone(), &self.identity_source));
                    config.dangerous().set_certificate_verifier(Arc::new(
                        verify::PcpServerVerifier::new(
                            self.webpki.clone(),
                            self.provider.clone(),
                            self.anchors.clone(),
                            host,
                            port,
                        ),
                    ));
                    (Arc::new(config), true)
                })
                .0
                .clone()
        };
        let scope = verify::HandshakeScope::enter();
        let conn = ClientConnection::new(config, name)
            .map_err(|e| Error::Tls(format!("cannot start TLS: {e}")))?;
        Ok((conn, scope))
    }
}

/// The client's session cache, which notes in the current handshake's scope
/// that the ClientHello offers to resume a session (so that a server's
/// refusal of resumption can be told apart from other failures).
#[derive(Debug)]
struct WatchedSessions {
    sessions: rustls::client::ClientSessionMemoryCache,
}

impl WatchedSessions {
    fn offered<T>(&self, value: Option<T>) -> Option<T> {
        if value.is_some() {
            if let Some(scope) = verify::HandshakeScope::current() {
                scope.offered_resumption.store(true, Ordering::Relaxed);
            }
        }
        value
    }
}

impl rustls::client::ClientSessionStore for WatchedSessions {
    fn set_kx_hint(&self, name: ServerName<'static>, group: rustls::NamedGroup) {
        self.sessions.set_kx_hint(name, group)
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.sessions.kx_hint(name)
    }

    fn set_tls12_session(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.sessions.set_tls12_session(name, value)
    }

    fn tls12_session(
        &self,
        name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.offered(self.sessions.tls12_session(name))
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.sessions.remove_tls12_session(name)
    }

    fn insert_tls13_ticket(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.sessions.insert_tls13_ticket(name, value)
    }

    fn take_tls13_ticket(
        &self,
        name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.offered(self.sessions.take_tls13_ticket(name))
    }
}

/// Adds the CAs the user trusts in their trust store (`pcp-secure trust
/// add --ca`) to the anchors from `tls.conf` or the system.
fn with_user_cas(mut anchors: certs::Anchors, source: String) -> (certs::Anchors, String) {
    let Some(store) = TrustStore::for_user() else {
        return (anchors, source);
    };
    let entries = match store.load() {
        Ok(entries) => entries,
        Err(e) => {
            log::warning!("{e}; it is ignored and will not be changed");
            return (anchors, source);
        }
    };
    let mut added = 0;
    for entry in entries.iter().filter(|e| e.ca) {
        match anchors.add(entry.der.clone()) {
            Ok(()) => added += 1,
            Err(e) => log::warning!(
                "trust store \"{}\": CA \"{}\" is not usable ({e}); ignored",
                store.file().display(),
                entry.host
            ),
        }
    }
    if added == 0 {
        return (anchors, source);
    }
    let source = format!(
        "{source} and {added} CA(s) of trust store \"{}\"",
        store.file().display()
    );
    (anchors, source)
}

/// Adds what the client's NSS database trusts: its CAs as anchors, and its
/// peer ("P") certificates as trusted in themselves.
fn with_nss_trust(
    mut anchors: certs::Anchors,
    source: String,
    nss: &crate::nssdb::conf::ClientNss,
) -> (certs::Anchors, String) {
    let mut cas = 0;
    for ca in &nss.cas {
        match anchors.add(ca.clone()) {
            Ok(()) => cas += 1,
            Err(e) => log::warning!(
                "NSS database \"{}\": a trusted CA is not usable ({e}); ignored",
                nss.spec
            ),
        }
    }
    anchors
        .fingerprints
        .extend(nss.peers.iter().map(|p| crate::trust::certinfo::sha256(p)));
    let source = format!(
        "{source} and NSS database \"{}\" ({cas} CA(s), {} server certificate(s))",
        nss.spec,
        nss.peers.len()
    );
    (anchors, source)
}

/// Identifies one version of a client `tls.conf`, so that an edited file is
/// picked up by the next connection.
type ConfStamp = Option<(PathBuf, Option<SystemTime>, u64)>;

/// The serving context, the handle pmcd was given for it (which stays the
/// same across renewals), and the files it is watched for.
struct ServerSlot {
    handle: usize,
    ctx: Arc<ServerContext>,
    watch: crate::tls::renewal::Watch,
}

/// The process-wide certificate store.
pub(crate) struct Store {
    server: Mutex<Option<ServerSlot>>,
    client: Mutex<Option<(ConfStamp, Arc<ClientContext>)>>,
    /// The program serves TLS with libpcp's own OpenSSL context (it uses
    /// that context itself: pmproxy); every server-side call goes to libpcp.
    server_left_to_libpcp: std::sync::atomic::AtomicBool,
    /// The installed server context's handle (0: none), readable without
    /// a lock (every `SSL_new` in the process asks whether its context is
    /// ours).
    server_handle: std::sync::atomic::AtomicUsize,
}

static STORE: Store = Store {
    server: Mutex::new(None),
    client: Mutex::new(None),
    server_left_to_libpcp: std::sync::atomic::AtomicBool::new(false),
    server_handle: std::sync::atomic::AtomicUsize::new(0),
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The store.
pub(crate) fn store() -> &'static Store {
    &STORE
}

impl Store {
    /// Builds the server context from `conf`, installs it (to be built
    /// anew when its files change) and logs where its certificate comes
    /// from. A failure leaves the previous context in place.
    fn install(&self, conf: TlsConf) -> Result<Arc<ServerContext>> {
        let ctx = ServerContext::build(&conf)?;
        log::info!(
            "{} serving TLS 1.2/1.3 with {}; {}",
            crate::ffi::version_str(),
            identity_source(&conf),
            ctx.crypto
        );
        if let Some(warning) = ctx.expiry_warning() {
            log::warning!("{warning}");
        }
        ctx.publish();
        let ctx = Arc::new(ctx);
        let handle = Arc::as_ptr(&ctx) as usize;
        *lock(&self.server) = Some(ServerSlot {
            handle,
            ctx: ctx.clone(),
            watch: crate::tls::renewal::Watch::new(conf),
        });
        self.server_handle.store(handle, Ordering::Release);
        Ok(ctx)
    }

    /// True when a server context is installed (without looking at its
    /// files).
    fn has_server(&self) -> bool {
        lock(&self.server).is_some()
    }

    /// Records that this program's server TLS is libpcp's own.
    pub(crate) fn leave_server_to_libpcp(&self) {
        self.server_left_to_libpcp.store(true, Ordering::Release);
    }

    /// True when `ptr` is the handle `__pmSecureServerInit` returned for
    /// the installed server context (no lock taken).
    pub(crate) fn is_server_handle(&self, ptr: usize) -> bool {
        ptr != 0 && self.server_handle.load(Ordering::Acquire) == ptr
    }

    /// True when this program's server TLS is libpcp's own.
    pub(crate) fn server_left_to_libpcp(&self) -> bool {
        self.server_left_to_libpcp.load(Ordering::Acquire)
    }

    /// The server context, if TLS serving is set up: built anew first when
    /// the files it came from have changed (see [`crate::tls::renewal`]).
    pub(crate) fn server(&self) -> Option<Arc<ServerContext>> {
        let mut guard = lock(&self.server);
        let slot = guard.as_mut()?;
        if let Some(now) = slot.watch.changed() {
            slot.watch.seen = now;
            match ServerContext::build(&slot.watch.conf) {
                Ok(ctx) => {
                    log::info!(
                        "the server's certificate files changed: new connections are served with {}",
                        identity_source(&slot.watch.conf)
                    );
                    if let Some(warning) = ctx.expiry_warning() {
                        log::warning!("{warning}");
                    }
                    ctx.publish();
                    slot.ctx = Arc::new(ctx);
                }
                Err(e) => log::error!(
                    "the server's certificate files changed but cannot be used: {e}; the previous certificate keeps serving"
                ),
            }
        }
        Some(slot.ctx.clone())
    }

    /// Drops the server context if `ptr` is the handle that
    /// `__pmSecureServerInit` returned for it. Returns whether it was
    /// dropped.
    pub(crate) fn clear_server(&self, ptr: *const ServerContext) -> bool {
        let mut guard = lock(&self.server);
        match guard.as_ref() {
            Some(slot) if slot.handle == ptr as usize => {
                *guard = None;
                self.server_handle.store(0, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    /// The client context for the current `tls.conf`, built on first use and
    /// rebuilt when the file changes.
    pub(crate) fn client(&self) -> Result<Arc<ClientContext>> {
        let path = config::tls_conf_path();
        let stamp: ConfStamp = path.as_ref().and_then(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((p.clone(), meta.modified().ok(), meta.len()))
        });
        let mut guard = lock(&self.client);
        if let Some((cached, ctx)) = guard.as_ref() {
            if *cached == stamp {
                return Ok(ctx.clone());
            }
        }
        let conf = match &stamp {
            Some((p, _, _)) => TlsConf::load(p)
                .map_err(|e| Error::Config(format!("\"{}\": cannot read ({e})", p.display())))?,
            None => TlsConf::default(),
        };
        let ctx = Arc::new(
            ClientContext::build(&conf, stamp.as_ref().map(|s| s.0.clone())).map_err(|e| {
                match &stamp {
                    Some((p, _, _)) => Error::Config(format!("{} (in {})", e, p.display())),
                    None => e,
                }
            })?,
        );
        log::debug!(
            "client TLS context built; trusting {}; {}",
            ctx.trust_source,
            ctx.crypto
        );
        *guard = Some((stamp, ctx.clone()));
        Ok(ctx)
    }
}

/// Builds the server context from pmcd's parsed `tls.conf` (`from_libpcp`,
/// libpcp's nine keys) and our own keys of the same file, installs it and
/// logs where its certificate comes from. `None` after logging what is
/// wrong: the caller then serves plain connections.
///
/// A configured but unusable TLS set-up does not stop the server (as in
/// PCP 5): it serves what an unconfigured one serves, clients that insist
/// on TLS are refused, `pmcd.feature.secure` is 0, and this error says so,
/// with the file this program's user cannot read and how to fix it.
pub(crate) fn install_server(from_libpcp: TlsConf) -> Option<Arc<ServerContext>> {
    let conf = config::server_settings(from_libpcp);
    store()
        .install(conf.clone())
        .map_err(|e| {
            let program = crate::interpose::program::name()
                .unwrap_or_else(|| "this program".into());
            log::error!(
                "{e}{}; TLS is configured but OFF: {program} serves plain connections only (pmcd.feature.secure is 0, clients that enforce TLS are refused) until this is fixed and {program} is restarted",
                unreadable_hint(&conf, &program)
            )
        })
        .ok()
}

/// When one of the files the server settings name cannot be read by the
/// user this program runs as (pmcd drops to user pcp before it sets TLS
/// up): "; pmcd runs as user ..., which cannot read FILE: ..." with the fix.
fn unreadable_hint(conf: &TlsConf, program: &str) -> String {
    let db = conf.nssdb.as_deref().and_then(|d| {
        let dir = crate::nssdb::directory(d).ok()?;
        Some(dir.join("cert9.db").display().to_string())
    });
    let files = [
        ("tls-cert-file", conf.cert_file.clone()),
        ("tls-key-file", conf.key_file.clone()),
        ("tls-ca-cert-file", conf.ca_cert_file.clone()),
        ("tls-nssdb", db),
        ("tls-nssdb-password-file", conf.nssdb_password_file.clone()),
    ];
    let denied = files.into_iter().find_map(|(key, file)| {
        let file = file?;
        match std::fs::File::open(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some((key, file)),
            _ => None,
        }
    });
    let Some((key, file)) = denied else {
        return String::new();
    };
    let user = crate::nssdb::password::current_user_name();
    let group = crate::nssdb::password::current_group_name();
    format!(
        "; {program} runs as user \"{user}\", which cannot read {key} \"{file}\": make it readable by that user (chgrp {group} \"{file}\" && chmod g+r \"{file}\", and its directories searchable; `pcp-secure cert server` run as root issues keys so)"
    )
}

/// Builds and installs the server context from an NSS database (the
/// NSS-era set-up functions), with the other settings (CAs, ciphers,
/// client verification) of `tls.conf`. A failure leaves the previous
/// context in place.
pub(crate) fn install_server_from_nssdb(
    db: Option<String>,
    passwd_file: Option<String>,
    nickname: Option<String>,
) -> Result<()> {
    let conf = TlsConf {
        cert_file: None,
        key_file: None,
        nssdb: Some(db.unwrap_or_else(|| "sql:/etc/pki/nssdb".into())),
        nssdb_password_file: passwd_file,
        cert_nickname: nickname,
        ..config::own_settings()
    };
    store().install(conf).map(|_| ()).map_err(|e| {
        let now = if store().has_server() {
            "the server's TLS settings are unchanged"
        } else {
            "TLS is off"
        };
        log::error!("{e}; {now}");
        e
    })
}

/// The `certfile` that makes an unchanged pmcd set TLS up when `tls.conf`
/// names only `tls-nssdb`: the database itself (dropped again by
/// [`config::server_settings`]).
pub(crate) fn nssdb_placeholder() -> Option<std::ffi::CString> {
    config::own_settings()
        .nssdb
        .and_then(|db| std::ffi::CString::new(db).ok())
}

/// Where the server's certificate comes from, for the log.
fn identity_source(conf: &TlsConf) -> String {
    match (&conf.nssdb, &conf.cert_file) {
        (Some(db), _) => format!(
            "certificate \"{}\" of NSS database \"{db}\" (tls-nssdb)",
            conf.cert_nickname
                .as_deref()
                .unwrap_or(config::DEFAULT_NICKNAME)
        ),
        (None, Some(file)) => format!("certificate \"{file}\" (tls-cert-file)"),
        (None, None) => "no certificate".into(),
    }
}
