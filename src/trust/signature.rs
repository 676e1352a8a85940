//! Signatures checked outside webpki's path building: a certificate's (or
//! CRL's) signature by an issuer's key, and every TLS handshake signature
//! by the peer certificate's key. The key is read with x509-parser, so this
//! works for every X.509 version, version 1 included (see
//! [`crate::trust::version1`]); the algorithms are the provider's.

#![forbid(unsafe_code)]

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::{CertificateError, DigitallySignedStruct, PeerMisbehaved};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::AlgorithmIdentifier;

/// Checks that the certificate `cert` (DER) carries a valid signature by
/// the key of the certificate `issuer` (DER; the same for a self-signed
/// one), with aws-lc-rs: ECDSA (P-256, P-384), RSA PKCS#1 v1.5 (2048 bits
/// or more) and Ed25519. The error says what is wrong.
pub fn signed_by(cert: &[u8], issuer: &[u8]) -> Result<(), String> {
    let (_, cert) =
        X509Certificate::from_der(cert).map_err(|e| format!("not a certificate ({e})"))?;
    let (_, issuer) = X509Certificate::from_der(issuer)
        .map_err(|e| format!("the issuer is not a certificate ({e})"))?;
    certificate_signed_by(&cert, &issuer)
}

/// [`signed_by`] on parsed certificates.
pub(crate) fn certificate_signed_by(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), String> {
    check(
        cert.tbs_certificate.as_ref(),
        &cert.signature_algorithm,
        &cert.signature_value.data,
        issuer,
    )
}

/// Checks the signature `signature` over `signed` (a certificate's or a
/// CRL's to-be-signed part), made with `algorithm`, by `issuer`'s key.
/// SHA-1 and MD5 signatures are refused as unsupported.
pub(crate) fn check(
    signed: &[u8],
    algorithm: &AlgorithmIdentifier<'_>,
    signature: &[u8],
    issuer: &X509Certificate<'_>,
) -> Result<(), String> {
    use aws_lc_rs::signature as sig;
    let spki = issuer.public_key();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let verifier: &dyn sig::VerificationAlgorithm = match (
        algorithm.algorithm.to_id_string().as_str(),
        curve.as_deref(),
    ) {
        ("1.2.840.10045.4.3.2", Some("1.2.840.10045.3.1.7")) => &sig::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.2", Some("1.3.132.0.34")) => &sig::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("1.2.840.10045.3.1.7")) => &sig::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.3", Some("1.3.132.0.34")) => &sig::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.113549.1.1.11", _) => &sig::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &sig::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &sig::RSA_PKCS1_2048_8192_SHA512,
        ("1.3.101.112", _) => &sig::ED25519,
        (other, _) => {
            return Err(format!(
                "unsupported signature algorithm {other} (or key type of the issuer)"
            ))
        }
    };
    sig::UnparsedPublicKey::new(verifier, &spki.subject_public_key.data)
        .verify(signed, signature)
        .map_err(|_| "the signature does not verify".to_string())
}

/// The subjectPublicKeyInfo of `cert`, parsed by x509-parser (which, unlike
/// webpki, reads every X.509 version).
fn public_key(
    cert: &CertificateDer<'_>,
) -> Result<SubjectPublicKeyInfoDer<'static>, rustls::Error> {
    let (_, x509) = X509Certificate::from_der(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    Ok(SubjectPublicKeyInfoDer::from(
        x509.public_key().raw.to_vec(),
    ))
}

/// Verifies a TLS 1.2 handshake signature with the key of `cert` (any
/// X.509 version), trying each of the provider's algorithms for the scheme
/// as rustls does.
pub fn tls12(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let spki = public_key(cert)?;
    let key = webpki::RawPublicKeyEntity::try_from(&spki)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let candidates = algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, algs)| *algs)
        .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
    for alg in candidates {
        match key.verify_signature(*alg, message, dss.signature()) {
            Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
            Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => continue,
            Err(_) => break,
        }
    }
    Err(rustls::Error::InvalidCertificate(
        CertificateError::BadSignature,
    ))
}

/// Verifies a TLS 1.3 handshake signature with the key of `cert` (any
/// X.509 version).
pub fn tls13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let spki = public_key(cert)?;
    rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, algorithms)
}
