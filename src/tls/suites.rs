//! Maps `tls-ciphers` (TLS 1.2, OpenSSL names) and `tls-ciphersuites`
//! (TLS 1.3) onto rustls cipher suites. Only the strong AEAD suites that
//! rustls implements exist; OpenSSL group words such as `DEFAULT` or `HIGH`
//! select all of them, exclusions (`!x`, `-x`) of anything we lack are
//! harmless, and a name that is neither a known suite nor such a word is an
//! error that names it.

#![forbid(unsafe_code)]

use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::{CipherSuite, SupportedCipherSuite};

use crate::error::{Error, Result};
use crate::tls::config::TlsConf;

/// OpenSSL's names of the suites rustls (ring) offers, with their codes.
const OPENSSL_NAMES: [(&str, CipherSuite); 9] = [
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// OpenSSL cipher-string words that mean "the usual strong set".
const GROUP_WORDS: [&str; 9] = [
    "DEFAULT",
    "HIGH",
    "ALL",
    "SECURE",
    "ECDHE",
    "EECDH",
    "AESGCM",
    "CHACHA20",
    "PROFILE=SYSTEM",
];

/// The crypto provider for a configuration: ring, restricted to the suites
/// the configuration names (all of them when it names none).
pub fn provider(conf: &TlsConf) -> Result<Arc<CryptoProvider>> {
    let base = ring::default_provider();
    let (tls13, tls12): (Vec<_>, Vec<_>) = base.cipher_suites.iter().copied().partition(is_tls13);
    let tls12 = match conf.ciphers.as_deref() {
        Some(list) => select("tls-ciphers", list, &tls12)?,
        None => tls12,
    };
    let tls13 = match conf.ciphersuites.as_deref() {
        Some(list) => select("tls-ciphersuites", list, &tls13)?,
        None => tls13,
    };
    let mut suites = tls13;
    suites.extend(tls12);
    if suites.is_empty() {
        return Err(Error::Config(
            "tls-ciphers and tls-ciphersuites leave no cipher suite to use".into(),
        ));
    }
    Ok(Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..base
    }))
}

fn is_tls13(suite: &SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls13(_))
}

/// Looks a name up: OpenSSL's spelling or the IANA/rustls one.
fn lookup(name: &str) -> Option<CipherSuite> {
    OPENSSL_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, s)| *s)
        .or_else(|| {
            ring::ALL_CIPHER_SUITES
                .iter()
                .map(|s| s.suite())
                .find(|s| s.as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        })
}

fn select(
    key: &str,
    list: &str,
    available: &[SupportedCipherSuite],
) -> Result<Vec<SupportedCipherSuite>> {
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    let mut excluded: Vec<CipherSuite> = Vec::new();
    for word in list.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        if let Some(rest) = word.strip_prefix(['!', '-']) {
            excluded.extend(lookup(rest));
            continue;
        }
        let word = word.strip_prefix('+').unwrap_or(word);
        if word.starts_with('@') || GROUP_WORDS.iter().any(|g| g.eq_ignore_ascii_case(word)) {
            for suite in available {
                if !chosen.contains(suite) {
                    chosen.push(*suite);
                }
            }
            continue;
        }
        let suite = lookup(word).ok_or_else(|| {
            Error::Config(format!(
                "{key}: unknown or unsupported cipher \"{word}\" (supported: {})",
                names(available)
            ))
        })?;
        let found = available.iter().find(|s| s.suite() == suite).ok_or_else(|| {
            Error::Config(format!("{key}: cipher \"{word}\" belongs to the other TLS version's setting (supported here: {})", names(available)))
        })?;
        if !chosen.contains(found) {
            chosen.push(*found);
        }
    }
    chosen.retain(|s| !excluded.contains(&s.suite()));
    if chosen.is_empty() {
        return Err(Error::Config(format!(
            "{key} = {list}: selects no cipher suite (supported: {})",
            names(available)
        )));
    }
    Ok(chosen)
}

fn names(available: &[SupportedCipherSuite]) -> String {
    available
        .iter()
        .map(|s| {
            OPENSSL_NAMES
                .iter()
                .find(|(_, c)| *c == s.suite())
                .map(|(n, _)| n.to_string())
                .unwrap_or_else(|| format!("{:?}", s.suite()))
        })
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(ciphers: Option<&str>, suites: Option<&str>) -> TlsConf {
        TlsConf {
            ciphers: ciphers.map(Into::into),
            ciphersuites: suites.map(Into::into),
            ..TlsConf::default()
        }
    }

    #[test]
    fn default_is_every_ring_suite() {
        let p = provider(&TlsConf::default()).unwrap();
        assert_eq!(p.cipher_suites.len(), ring::DEFAULT_CIPHER_SUITES.len());
    }

    #[test]
    fn tls13_names_select_exactly() {
        let p = provider(&conf(None, Some("TLS_CHACHA20_POLY1305_SHA256"))).unwrap();
        let v13: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| is_tls13(s))
            .map(|s| s.suite())
            .collect();
        assert_eq!(v13, vec![CipherSuite::TLS13_CHACHA20_POLY1305_SHA256]);
    }

    #[test]
    fn openssl_words_and_exclusions() {
        let p = provider(&conf(
            Some("DEFAULT:!MEDIUM:!ECDHE-RSA-AES128-GCM-SHA256"),
            None,
        ))
        .unwrap();
        let v12: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| !is_tls13(s))
            .map(|s| s.suite())
            .collect();
        assert!(!v12.contains(&CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(v12.contains(&CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384));
    }

    #[test]
    fn unknown_names_are_errors_that_name_them() {
        let err = provider(&conf(Some("ECDHE-RSA-AES128-GCM-SHA256:RC4-SHA"), None)).unwrap_err();
        assert!(err.to_string().contains("\"RC4-SHA\""), "{err}");
        let err = provider(&conf(None, Some("TLS_AES_128_CCM_SHA256"))).unwrap_err();
        assert!(err.to_string().contains("tls-ciphersuites"), "{err}");
    }

    #[test]
    fn wrong_version_names_are_errors() {
        let err = provider(&conf(Some("TLS_AES_128_GCM_SHA256"), None)).unwrap_err();
        assert!(err.to_string().contains("other TLS version"), "{err}");
    }
}
