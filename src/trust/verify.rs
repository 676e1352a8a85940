//! How a client decides to trust a server (issue: "verify, prompt on first
//! use, remember"):
//!
//! 1. A chain to a trusted CA with the right host name: accepted.
//! 2. Anything wrong with the certificate itself (expired, not yet valid,
//!    revoked, bad signature, wrong purpose): refused, never asked.
//! 3. An issuer we do not trust: accepted silently if the trust store holds
//!    this certificate for this host; refused loudly if it holds another one
//!    (like ssh's changed host key); else, with `PCP_ALLOW_SERVER_SELF_CERT`
//!    set, accepted and saved; else the user is asked, and a yes saves it.
//! 4. A host name the certificate does not list: accepted with
//!    `PCP_ALLOW_BAD_CERT_DOMAIN` set, else the user is asked (not saved).

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::log;
use crate::tls::certs::Anchors;
use crate::trust::certinfo::{self, CertInfo};
use crate::trust::prompt;
use crate::trust::signature;
pub use crate::trust::signature::signed_by;
use crate::trust::store::{TrustStore, Verdict};
use crate::trust::version1;

/// What happened during one client handshake: recorded by the verifier and
/// the client-certificate resolver, read by the handshake code.
#[derive(Debug, Default)]
pub struct Scope {
    /// The server asked for a client certificate.
    pub asked: AtomicBool,
    /// Milliseconds spent waiting for the user (not counted against the
    /// handshake time-out).
    pub prompt_ms: AtomicU64,
    /// The certificate was saved in the trust store.
    pub saved: AtomicBool,
    /// The ClientHello offered to resume an earlier session.
    pub offered_resumption: AtomicBool,
}

thread_local! {
    /// The scopes of the client handshakes running on this thread, innermost
    /// last. A handshake runs on its caller's thread from start to end, and
    /// rustls calls the verifier and the resolver on that thread.
    static SCOPES: std::cell::RefCell<Vec<Arc<Scope>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The open [`Scope`] of one client handshake on this thread: the verifier
/// and the client-certificate resolver (shared by every connection to a
/// host, because rustls resumes only with the very same objects) record
/// into it what they learn about this handshake. Dropping the guard closes
/// the scope.
#[derive(Debug)]
pub struct HandshakeScope {
    scope: Arc<Scope>,
}

impl HandshakeScope {
    /// Opens a scope for a handshake on this thread.
    pub fn enter() -> HandshakeScope {
        let scope = Arc::new(Scope::default());
        SCOPES.with(|s| s.borrow_mut().push(scope.clone()));
        HandshakeScope { scope }
    }

    /// The scope of the innermost handshake running on this thread, if any.
    pub(crate) fn current() -> Option<Arc<Scope>> {
        SCOPES.with(|s| s.borrow().last().cloned())
    }
}

impl std::ops::Deref for HandshakeScope {
    type Target = Scope;
    fn deref(&self) -> &Scope {
        &self.scope
    }
}

impl Drop for HandshakeScope {
    fn drop(&mut self) {
        SCOPES.with(|s| {
            let mut scopes = s.borrow_mut();
            // Normally the innermost one; remove exactly this one either way.
            if let Some(i) = scopes.iter().rposition(|x| Arc::ptr_eq(x, &self.scope)) {
                scopes.remove(i);
            }
        });
    }
}

/// Why a certificate is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It chains to a trusted CA and lists the host name.
    ChainsToCa,
    /// The (self-signed) certificate itself is listed among the CAs.
    ListedAsCa,
    /// It was accepted for this host before (trust store).
    Saved,
}

/// The decision about a server's certificate before anyone is asked.
#[derive(Debug)]
pub enum Assessment {
    /// Accepted without a question.
    Trusted(Why),
    /// Refused whatever anyone answers (dates, signature, revocation...).
    Refused(rustls::Error),
    /// Another certificate was saved for this host: its SHA-256.
    Changed(String),
    /// Otherwise fine, but it does not list the host name: ask (or
    /// `PCP_ALLOW_BAD_CERT_DOMAIN`).
    NameMismatch(rustls::Error),
    /// The issuer is not trusted and nothing is saved: ask (or
    /// `PCP_ALLOW_SERVER_SELF_CERT`), then also about the name if wrong.
    UntrustedIssuer(Option<rustls::Error>),
}

/// The verifier of one client connection.
#[derive(Debug)]
pub(crate) struct PcpServerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    anchors: Arc<Anchors>,
    host: String,
    /// The server's port, when known: trust store entries are per host
    /// and port.
    port: Option<u16>,
    store: Option<TrustStore>,
}

/// Builds a webpki verifier over `roots` that honours `crls`, listing as
/// revoked only what a CRL names.
pub fn webpki(
    roots: RootCertStore,
    crls: &[CertificateRevocationListDer<'static>],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls.iter().cloned())
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| e.to_string())
}

fn env_set(name: &str) -> bool {
    crate::tls::config::env::allowed(name)
}

fn other(message: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal(
        message,
    )))))
}

/// A refusal reason of our own, carried through rustls.
#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

impl PcpServerVerifier {
    /// A verifier for a connection to `host` (as the user typed it) on
    /// `port` (`None` when not known).
    pub(crate) fn new(
        webpki: Arc<WebPkiServerVerifier>,
        provider: Arc<CryptoProvider>,
        anchors: Arc<Anchors>,
        host: &str,
        port: Option<u16>,
    ) -> PcpServerVerifier {
        PcpServerVerifier {
            webpki,
            provider,
            anchors,
            host: host.to_string(),
            port,
            store: TrustStore::for_user(),
        }
    }

    /// The server's trust store key ("host", "host:port").
    fn key(&self) -> String {
        crate::trust::store::server_key(&self.host, self.port)
    }

    /// Asks, and where nobody could be asked (a daemon, a job without a
    /// terminal) says how `advice` would have let it through.
    fn ask(&self, warning: Vec<String>, question: &str, advice: Option<String>) -> bool {
        let start = Instant::now();
        let answer = prompt::ask(&warning, question);
        let spent = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(scope) = HandshakeScope::current() {
            scope.prompt_ms.fetch_add(spent, Ordering::Relaxed);
        }
        if answer == prompt::Answer::NotAsked {
            if let Some(advice) = advice {
                log::info!("{advice}");
            }
        }
        answer == prompt::Answer::Yes
    }

    /// How the user this process runs as can trust this server without a
    /// question.
    fn trust_advice(&self) -> String {
        let user = crate::nssdb::password::current_user_name();
        let store = match self.store_file() {
            s if s.is_empty() => "no trust store: set HOME or PCP_SECURE_DB_PATH".to_string(),
            s => format!("trust store \"{s}\""),
        };
        format!(
            "nobody could be asked about the server \"{}\" (no terminal); to trust it, run `pcp-secure trust add {key}` as user \"{user}\" (or as root `pcp-secure trust add --user {user} {key}`; {store}), which fetches its certificate and shows its fingerprints, or add the CA that issued it to tls-ca-cert-file",
            self.host,
            key = self.key()
        )
    }

    /// The whole decision about a server's chain, without asking anyone and
    /// without saving anything (what `pcp-secure probe` reports, and what
    /// [`ServerCertVerifier::verify_server_cert`] then acts on).
    pub(crate) fn assess(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Assessment {
        if version1::is_version1(end_entity) {
            return self.assess_version1(end_entity, intermediates, server_name, now);
        }
        // Only CA certificates can link a chain. A certificate without
        // basicConstraints sent along (guide 000's "Local CA certificate",
        // which an NSS pmcd sends with its own) is left out here, so that an
        // untrusted one is what it is, an unknown issuer, rather than a
        // chain refused outright; trusted as an anchor it still works.
        match self.webpki.verify_server_cert(
            end_entity,
            &chain_cas(intermediates),
            server_name,
            ocsp,
            now,
        ) {
            Ok(_) => Assessment::Trusted(Why::ChainsToCa),
            Err(e) if is_name_mismatch(&e) => Assessment::NameMismatch(e),
            Err(e) if is_untrusted_issuer(&e) => {
                match self.check_certificate_itself(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp,
                    now,
                ) {
                    Ok(name_error) => self.assess_untrusted_issuer(end_entity, name_error),
                    Err(e) => Assessment::Refused(e),
                }
            }
            Err(e) => Assessment::Refused(e),
        }
    }

    /// An X.509 version 1 certificate (see [`version1`]): trusted when a
    /// trusted CA signed it, with the host name in its subject CN; else
    /// judged like any certificate from an unknown issuer.
    fn assess_version1(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Assessment {
        let name = version1::name_check(end_entity, server_name);
        match version1::version1_issuer(end_entity, &self.anchors, now) {
            Ok(_) => match name {
                Ok(()) => Assessment::Trusted(Why::ChainsToCa),
                Err(e) => Assessment::NameMismatch(e),
            },
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                match version1::check_untrusted(end_entity, intermediates, now) {
                    Ok(()) => self.assess_untrusted_issuer(end_entity, name.err()),
                    Err(e) => Assessment::Refused(e),
                }
            }
            Err(e) => Assessment::Refused(e),
        }
    }

    /// The certificate chains to nothing we trust and nothing that no
    /// answer may override is wrong with it (`name_error`: the host name
    /// it does not list, if so): listed as trusted, saved, changed, or to
    /// be asked about.
    fn assess_untrusted_issuer(
        &self,
        end_entity: &CertificateDer<'_>,
        name_error: Option<rustls::Error>,
    ) -> Assessment {
        if self
            .anchors
            .fingerprints
            .contains(&certinfo::sha256(end_entity))
        {
            // The server's own certificate is listed as trusted (a
            // self-signed one among the CAs, an NSS "P" entry).
            return match name_error {
                Some(e) => Assessment::NameMismatch(e),
                None => Assessment::Trusted(Why::ListedAsCa),
            };
        }
        let entries = match &self.store {
            Some(store) => store.load().unwrap_or_else(|e| {
                log::warning!("{e}; it is ignored and will not be changed");
                Vec::new()
            }),
            None => Vec::new(),
        };
        match TrustStore::verdict(&entries, &self.host, self.port, end_entity) {
            Verdict::Accepted => Assessment::Trusted(Why::Saved),
            Verdict::Changed(saved) => Assessment::Changed(saved),
            Verdict::Unknown => Assessment::UntrustedIssuer(name_error),
        }
    }

    /// The trust store file, for messages.
    pub(crate) fn store_file(&self) -> String {
        self.store
            .as_ref()
            .map(|s| s.file().display().to_string())
            .unwrap_or_default()
    }

    /// Refuses a certificate that changed since it was saved, loudly.
    fn changed(&self, saved: &str, now_fp: &str) -> rustls::Error {
        let file = self.store_file();
        log::emit_raw(&format!(
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             WARNING: THE CERTIFICATE OF HOST {host} HAS CHANGED!\n\
             @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             Someone could be intercepting this connection (a man-in-the-middle\n\
             attack), or the server's certificate was replaced.\n\
             The certificate saved for {key} in {file}\n\
             has SHA256 fingerprint {saved};\n\
             the server now presents {now_fp}.\n\
             If the change is expected, remove the entry for {key} from that file\n\
             (or run: pcp-secure trust remove {key}) and connect again.\n",
            host = self.host,
            key = self.key(),
        ));
        other(format!(
            "the certificate of host \"{}\" has changed since it was saved in {file}; refusing it",
            self.host
        ))
    }

    /// The issuer is not trusted and nothing is saved: allowed by
    /// `PCP_ALLOW_SERVER_SELF_CERT` or by the user, then saved.
    fn accept_untrusted_issuer(
        &self,
        end_entity: &CertificateDer<'_>,
        name_error: Option<rustls::Error>,
    ) -> Result<(), rustls::Error> {
        let info = CertInfo::of(end_entity);
        let mut warning = vec![format!(
            "WARNING: issuer of certificate received from host {} is not trusted.",
            self.host
        )];
        warning.extend(info.lines());
        let accepted = env_set("PCP_ALLOW_SERVER_SELF_CERT")
            || self.ask(
                warning,
                "Do you want to accept and save this certificate locally anyway",
                Some(self.trust_advice()),
            );
        if !accepted {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        }
        if let Some(e) = name_error {
            self.name_mismatch(&info, e)?;
        }
        match &self.store {
            Some(store) => match store.save(&self.host, self.port, end_entity) {
                Ok(()) => {
                    if let Some(scope) = HandshakeScope::current() {
                        scope.saved.store(true, Ordering::Relaxed);
                    }
                    log::debug!("saved the certificate of host {} in {}", self.host, store.file().display());
                }
                Err(e) => log::warning!("the certificate of host {} was accepted but not saved: {e}", self.host),
            },
            None => log::warning!(
                "the certificate of host {} was accepted but not saved: neither PCP_SECURE_DB_PATH nor HOME is set",
                self.host
            ),
        }
        Ok(())
    }

    /// Checks what no prompt may override: validity dates, signatures (as
    /// far as the presented chain allows), revocation and purpose. Returns
    /// the name mismatch found on the way, if any.
    fn check_certificate_itself(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<Option<rustls::Error>, rustls::Error> {
        check_dates(end_entity, now)?;
        // Anchor the chain at its own top certificate: a self-signed
        // certificate then has its signature checked, a chain its links.
        let top = intermediates.last().unwrap_or(end_entity);
        let mut roots = RootCertStore::empty();
        if roots.add(top.clone().into_owned()).is_err() {
            return Ok(None);
        }
        let anchored = webpki(roots, &self.anchors.crls, &self.provider).map_err(other)?;
        match anchored.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(_) => Ok(None),
            // A self-signed certificate marked as a CA (what `openssl req
            // -x509` makes): webpki will not take it as a server's own, so
            // check its signature and names directly.
            Err(e) if is_ca_as_end_entity(&e) && intermediates.is_empty() => {
                check_self_signed(end_entity)?;
                Ok(name_check(end_entity, server_name).err())
            }
            // The issuer's certificate was not sent: its signature cannot be
            // checked here, only pinned by the person who accepts it. webpki
            // checks names only on a built chain, so check the name here.
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                Ok(name_check(end_entity, server_name).err())
            }
            Err(e @ rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(
                e @ rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                    ..
                }),
            ) => Ok(Some(e)),
            Err(e) => Err(e),
        }
    }

    /// The certificate does not list the host name: ask, or honour
    /// `PCP_ALLOW_BAD_CERT_DOMAIN`.
    fn name_mismatch(&self, info: &CertInfo, error: rustls::Error) -> Result<(), rustls::Error> {
        if env_set("PCP_ALLOW_BAD_CERT_DOMAIN") {
            return Ok(());
        }
        let mut warning = vec![format!(
            "WARNING: The domain name {} does not match the DNS name(s) on the server certificate:",
            self.host
        )];
        if info.dns_names.is_empty() {
            warning.push("  (the certificate lists no DNS names)".to_string());
        }
        warning.extend(info.dns_names.iter().map(|n| format!("  {n}")));
        if self.ask(
            warning,
            "Do you want to accept this certificate anyway",
            None,
        ) {
            Ok(())
        } else {
            Err(error)
        }
    }
}

/// Refuses certificates outside their validity period, whatever else is
/// wrong with them.
fn check_dates(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let Ok((_, x509)) = X509Certificate::from_der(cert) else {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ));
    };
    within_dates(&x509, now)
}

/// Refuses a parsed certificate outside its validity period.
pub(crate) fn within_dates(x509: &X509Certificate<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now > x509.validity().not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    if now < x509.validity().not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    Ok(())
}

/// Verifies the signature of a self-signed certificate with its own key.
fn check_self_signed(cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let (_, x509) = X509Certificate::from_der(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if x509.subject() != x509.issuer() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
    }
    signature::certificate_signed_by(&x509, &x509)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))
}

/// Whether the certificate lists the host name (DNS or IP SAN); works
/// without a chain, so also for certificates from an untrusted issuer.
pub fn name_check(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    ee.verify_is_valid_for_subject_name(server_name)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
}

/// Whether a server certificate is valid for `server_name` as the
/// library's clients decide it: the subjectAltName of a version 3
/// certificate ([`name_check`]), the subject CN of an X.509 version 1 one.
pub fn server_name_check(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    if version1::is_version1(cert) {
        version1::name_check(cert, server_name)
    } else {
        name_check(cert, server_name)
    }
}

/// Whether the certificate is outside its validity period now (false when
/// it cannot be decoded at all).
pub fn out_of_date(cert: &CertificateDer<'_>) -> bool {
    matches!(
        check_dates(cert, UnixTime::now()),
        Err(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::NotValidYet
        ))
    )
}

/// Whether `cert` may link a chain: a version 3 certificate marked as a CA
/// (basicConstraints), or one that cannot be parsed at all (webpki then
/// says what is wrong with it).
pub fn may_issue(cert: &CertificateDer<'_>) -> bool {
    match X509Certificate::from_der(cert) {
        Ok((_, c)) => c.version() == x509_parser::x509::X509Version::V3 && c.is_ca(),
        Err(_) => true,
    }
}

/// The certificates of `intermediates` that may link a chain
/// ([`may_issue`]), the others left out.
pub fn chain_cas<'a>(intermediates: &[CertificateDer<'a>]) -> Vec<CertificateDer<'a>> {
    intermediates
        .iter()
        .filter(|c| may_issue(c))
        .cloned()
        .collect()
}

/// webpki's "a CA certificate was used as the server's own".
fn is_ca_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            matches!(
                inner.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            )
        }
        _ => false,
    }
}

/// The certificate chains to nothing trusted: an unknown issuer, or a
/// self-signed certificate marked as a CA used as the server's own.
pub fn is_untrusted_issuer(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    ) || is_ca_as_end_entity(e)
}

/// The certificate does not list the host name.
pub fn is_name_mismatch(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for PcpServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.assess(end_entity, intermediates, server_name, ocsp, now) {
            Assessment::Trusted(_) => {}
            Assessment::Refused(e) => return Err(e),
            Assessment::Changed(saved) => {
                return Err(self.changed(&saved, &certinfo::sha256(end_entity)))
            }
            Assessment::NameMismatch(e) => self.name_mismatch(&CertInfo::of(end_entity), e)?,
            Assessment::UntrustedIssuer(name_error) => {
                self.accept_untrusted_issuer(end_entity, name_error)?
            }
        }
        if let Some(warning) = version1::warning(
            end_entity,
            &format!("the server certificate of host {}", self.host),
            version1::Role::Server,
        ) {
            log::warning!("{warning}");
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signature::tls12(
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
        signature::tls13(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
