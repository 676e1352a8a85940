//! What a person needs to decide about a certificate: fingerprints, subject,
//! issuer, validity and the names it is issued for.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Colon-separated uppercase hex of a digest, as certutil and openssl print it.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// Text from a certificate made safe to print and to store on one line:
/// control characters (line breaks, escape sequences) become `\xNN`. A
/// certificate is the peer's to write, so its text must never be able to
/// add lines to the trust store or move a terminal's cursor.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02X}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// SHA-256 fingerprint of a DER certificate.
pub fn sha256(der: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

/// SHA-1 fingerprint (shown because PCP's guide shows it; never used to decide).
pub(crate) fn sha1(der: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

/// The facts shown about a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-256 fingerprint.
    pub sha256: String,
    /// SHA-1 fingerprint.
    pub sha1: String,
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity.
    pub not_before: String,
    /// End of validity.
    pub not_after: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub names: Vec<String>,
    /// Just the DNS names.
    pub dns_names: Vec<String>,
}

impl CertInfo {
    /// Describes a certificate; fields that cannot be decoded say so.
    pub fn of(cert: &CertificateDer<'_>) -> CertInfo {
        let mut info = CertInfo {
            sha256: sha256(cert),
            sha1: sha1(cert),
            ..CertInfo::default()
        };
        match X509Certificate::from_der(cert) {
            Ok((_, x509)) => {
                info.subject = printable(&x509.subject().to_string());
                info.issuer = printable(&x509.issuer().to_string());
                info.not_before = x509.validity().not_before.to_string();
                info.not_after = x509.validity().not_after.to_string();
                if let Ok(Some(san)) = x509.subject_alternative_name() {
                    for name in &san.value.general_names {
                        match name {
                            GeneralName::DNSName(d) => {
                                let d = printable(d);
                                info.names.push(format!("DNS:{d}"));
                                info.dns_names.push(d);
                            }
                            GeneralName::IPAddress(ip) => {
                                info.names.push(format!("IP:{}", ip_text(ip)))
                            }
                            _ => {}
                        }
                    }
                }
            }
            Err(_) => info.subject = "(certificate cannot be decoded)".into(),
        }
        info
    }

    /// The lines the trust prompt shows after its WARNING line.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("SHA256 fingerprint is {}", self.sha256),
            format!("SHA1 fingerprint is {}", self.sha1),
            format!("Subject: {}", self.subject),
            format!("Issuer: {}", self.issuer),
            format!("Valid from {} to {}", self.not_before, self.not_after),
            format!(
                "Names: {}",
                if self.names.is_empty() {
                    "(none)".to_string()
                } else {
                    self.names.join(", ")
                }
            ),
        ]
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => hex(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_colon_separated_uppercase() {
        assert_eq!(hex(&[0x0a, 0xff, 0x00]), "0A:FF:00");
        assert_eq!(sha256(b"").len(), 32 * 3 - 1);
        assert!(sha1(b"abc").starts_with("A9:99:3E:36"));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\nb\x1b[2J"), "a\\x0Ab\\x1B[2J");
        assert_eq!(printable("plain CN=x, O=ü"), "plain CN=x, O=ü");
    }

    #[test]
    fn garbage_is_described_not_fatal() {
        let info = CertInfo::of(&CertificateDer::from(vec![1u8, 2, 3]));
        assert!(info.subject.contains("cannot be decoded"));
        assert_eq!(info.lines().len(), 6);
    }
}
