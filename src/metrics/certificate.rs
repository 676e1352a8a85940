//! What the metrics say about a served certificate: its subject and when
//! it ends, read from its DER encoding.

#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// One certificate as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The subject, as OpenSSL prints it ("CN=localhost, O=PCP").
    pub(crate) subject: String,
    /// The end of its validity, in seconds since 1970.
    pub(crate) not_after: i64,
}

impl Facts {
    /// The facts of the certificate `der`, if it can be parsed.
    pub(crate) fn of(der: &[u8]) -> Option<Facts> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(Facts {
            subject: cert.subject().to_string(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

/// Seconds since 1970, now.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_and_end_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pcp.example");
        params.not_after = rcgen::date_time_ymd(2031, 5, 17);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let facts = Facts::of(cert.der()).expect("parsed");
        assert_eq!(facts.subject, "CN=pcp.example");
        // 2031-05-17T00:00:00Z
        assert_eq!(facts.not_after, 1_936_742_400);
        assert_eq!(Facts::of(b"not a certificate"), None);
    }
}
