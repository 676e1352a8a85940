//! How a server judges the certificates its clients present: webpki's
//! client verifier, with X.509 version 1 certificates (PCP's guide 001 made
//! its client certificates so) checked by [`crate::trust::version1`]
//! instead, each one named in the log once per server context.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::log;
use crate::trust::{certinfo, signature, verify, version1};

/// A client verifier: webpki's for version 3 certificates, ours for
/// version 1; handshake signatures checked for either by
/// [`signature`].
#[derive(Debug)]
pub(crate) struct ClientAuth {
    webpki: Arc<dyn ClientCertVerifier>,
    /// The CA certificates trusted to issue client certificates.
    cas: Vec<CertificateDer<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
    /// Fingerprints of the version 1 certificates already named in the
    /// log.
    warned: Mutex<HashSet<String>>,
}

impl ClientAuth {
    /// Wraps `webpki`, which trusts the CAs `cas` with the CRLs `crls`.
    pub(crate) fn new(
        webpki: Arc<dyn ClientCertVerifier>,
        cas: Vec<CertificateDer<'static>>,
        crls: Vec<CertificateRevocationListDer<'static>>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> ClientAuth {
        ClientAuth {
            webpki,
            cas,
            crls,
            algorithms,
            warned: Mutex::new(HashSet::new()),
        }
    }

    fn warn_once(&self, cert: &CertificateDer<'_>) {
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(certinfo::sha256(cert)))
            .unwrap_or(true);
        if first {
            if let Some(warning) =
                version1::warning(cert, "a client certificate", version1::Role::Client)
            {
                log::warning!("{warning}");
            }
        }
    }
}

impl ClientCertVerifier for ClientAuth {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if version1::is_version1(end_entity) {
            version1::issued_by_trusted(end_entity, &self.cas, &self.crls, now)?;
            self.warn_once(end_entity);
            return Ok(ClientCertVerified::assertion());
        }
        // As for servers: only CA certificates link a chain.
        self.webpki
            .verify_client_cert(end_entity, &verify::chain_cas(intermediates), now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signature::tls12(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signature::tls13(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
