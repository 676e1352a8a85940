//! The crypto provider: rustls on aws-lc-rs (AWS-LC, or its FIPS 140-3
//! module in a build with the `fips` feature), with the cipher suites of
//! `tls-ciphers`/`tls-ciphersuites`, the key-exchange groups of `tls-groups`
//! (see [`crate::tls::groups`]) and the FIPS requirement of `tls-fips`.
//!
//! Maps `tls-ciphers` (TLS 1.2, OpenSSL names) and `tls-ciphersuites`
//! (TLS 1.3) onto rustls cipher suites. Only the strong AEAD suites that
//! rustls implements exist; OpenSSL group words such as `DEFAULT` or `HIGH`
//! select all of them, exclusions (`!x`, `-x`) of anything we lack are
//! harmless, and a name that is neither a known suite nor such a word is an
//! error that names it.

#![forbid(unsafe_code)]

use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::{CipherSuite, SupportedCipherSuite};

use crate::error::{Error, Result};
use crate::tls::config::TlsConf;
use crate::tls::groups;

/// OpenSSL's names of the suites rustls (aws-lc-rs) offers, with their codes.
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

/// True when this library was built on AWS-LC's FIPS 140-3 module (the
/// `fips` feature): then only FIPS-approved algorithms are offered.
pub const FIPS_BUILD: bool = cfg!(feature = "fips");

/// The crypto provider for a configuration: aws-lc-rs, restricted to the
/// suites and groups the configuration names (the defaults when it names
/// none). `tls-fips = true` in a build without the FIPS module is an error,
/// as is any setting naming an algorithm that FIPS mode does not allow.
pub fn provider(conf: &TlsConf) -> Result<Arc<CryptoProvider>> {
    let fips = fips_mode(conf)?;
    let base = aws_lc_rs::default_provider();
    let (tls13, tls12): (Vec<_>, Vec<_>) = base.cipher_suites.iter().copied().partition(is_tls13);
    let tls12 = match conf.ciphers.as_deref() {
        Some(list) => select("tls-ciphers", list, &tls12, fips)?,
        None => tls12,
    };
    let tls13 = match conf.ciphersuites.as_deref() {
        Some(list) => select("tls-ciphersuites", list, &tls13, fips)?,
        None => tls13,
    };
    let mut suites = tls13;
    suites.extend(tls12);
    if suites.is_empty() {
        return Err(Error::Config(
            "tls-ciphers and tls-ciphersuites leave no cipher suite to use".into(),
        ));
    }
    let provider = CryptoProvider {
        cipher_suites: suites,
        kx_groups: groups::select(conf.groups.as_deref(), fips)?,
        ..base
    };
    if fips && !provider.fips() {
        return Err(Error::Config(
            "tls-fips = true, but the AWS-LC FIPS module is not in FIPS mode (its power-on self tests failed?)".into(),
        ));
    }
    Ok(Arc::new(provider))
}

/// Whether FIPS mode is on: always in a FIPS build, never otherwise; a
/// `tls-fips = true` that this build cannot honour is an error.
fn fips_mode(conf: &TlsConf) -> Result<bool> {
    let requested = conf.fips()?;
    if requested && !FIPS_BUILD {
        return Err(Error::Config(
            "tls-fips = true, but this libpcp_secure is built without the FIPS 140-3 module (AWS-LC's, the \"fips\" build); install the FIPS build or remove tls-fips".into(),
        ));
    }
    Ok(FIPS_BUILD)
}

/// Fails when `tls-fips = true` and a configuration built with `provider`
/// is not FIPS-compliant in rustls' judgement (`is_fips` is
/// `ServerConfig::fips()` or `ClientConfig::fips()`); `what` names it.
pub(crate) fn check_fips(conf: &TlsConf, is_fips: bool, what: &str) -> Result<()> {
    if conf.fips()? && !is_fips {
        return Err(Error::Config(format!(
            "tls-fips = true, but the {what} TLS configuration is not FIPS-compliant"
        )));
    }
    Ok(())
}

/// What the provider does, for logs and `pcp-secure`: "key exchange
/// X25519MLKEM768:X25519:secp256r1:secp384r1, AWS-LC (not FIPS)".
pub fn summary(provider: &CryptoProvider) -> String {
    format!(
        "key exchange {}, {}",
        groups::names(&provider.kx_groups),
        module(provider.fips())
    )
}

/// The crypto module in use: "AWS-LC FIPS 140-3 module, FIPS mode" or
/// "AWS-LC (not FIPS)".
pub fn module(fips: bool) -> &'static str {
    if fips {
        "AWS-LC FIPS 140-3 module, FIPS mode"
    } else if FIPS_BUILD {
        "AWS-LC FIPS 140-3 module, NOT in FIPS mode"
    } else {
        "AWS-LC (not FIPS)"
    }
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
            aws_lc_rs::ALL_CIPHER_SUITES
                .iter()
                .map(|s| s.suite())
                .find(|s| s.as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        })
}

fn select(
    key: &str,
    list: &str,
    available: &[SupportedCipherSuite],
    fips: bool,
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
            let tls13 = aws_lc_rs::ALL_CIPHER_SUITES
                .iter()
                .find(|s| s.suite() == suite)
                .is_some_and(is_tls13);
            let here = available.first().is_some_and(is_tls13);
            if fips && tls13 == here {
                Error::Config(format!("{key}: cipher \"{word}\" is not FIPS-approved, and this FIPS build of libpcp_secure uses only approved ones (FIPS-approved: {})", names(available)))
            } else {
                Error::Config(format!("{key}: cipher \"{word}\" belongs to the other TLS version's setting (supported here: {})", names(available)))
            }
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
    fn default_is_every_default_suite_and_the_post_quantum_groups() {
        let p = provider(&TlsConf::default()).unwrap();
        assert_eq!(
            p.cipher_suites.len(),
            aws_lc_rs::DEFAULT_CIPHER_SUITES.len()
        );
        assert_eq!(p.kx_groups[0].name(), rustls::NamedGroup::X25519MLKEM768);
        // The FIPS build leaves out X25519, which FIPS does not approve.
        let want = if FIPS_BUILD {
            "key exchange X25519MLKEM768:secp256r1:secp384r1, AWS-LC FIPS 140-3 module, FIPS mode"
        } else {
            "key exchange X25519MLKEM768:X25519:secp256r1:secp384r1, AWS-LC (not FIPS)"
        };
        assert_eq!(summary(&p), want);
    }

    #[test]
    fn groups_are_set_by_tls_groups() {
        // X25519 is not FIPS-approved: the FIPS build orders two others.
        let (setting, want) = if FIPS_BUILD {
            ("P-384:P-256", "secp384r1:secp256r1")
        } else {
            ("P-384:X25519", "secp384r1:X25519")
        };
        let conf = TlsConf {
            groups: Some(setting.into()),
            ..TlsConf::default()
        };
        assert_eq!(groups::names(&provider(&conf).unwrap().kx_groups), want);
        let conf = TlsConf {
            groups: Some("X448".into()),
            ..TlsConf::default()
        };
        let err = provider(&conf).unwrap_err().to_string();
        assert!(
            err.starts_with("tls-groups: ") && err.contains("\"X448\""),
            "{err}"
        );
    }

    #[cfg(not(feature = "fips"))]
    #[test]
    fn fips_is_refused_without_the_fips_module() {
        let conf = TlsConf {
            fips: Some("true".into()),
            ..TlsConf::default()
        };
        let err = provider(&conf).unwrap_err().to_string();
        assert!(
            err.starts_with("tls-fips = true") && err.contains("without the FIPS 140-3 module"),
            "{err}"
        );
        let off = TlsConf {
            fips: Some("false".into()),
            ..TlsConf::default()
        };
        assert!(!provider(&off).unwrap().fips());
        assert_eq!(module(false), "AWS-LC (not FIPS)");
    }

    /// The default build's AWS-LC has no CPU-jitter entropy source
    /// (`AWS_LC_SYS_NO_JITTER_ENTROPY` in .cargo/config.toml): with it, the
    /// first random number of every process that loads the library costs
    /// about 25 ms of CPU. Its DRBG is seeded from getrandom(2) instead.
    #[cfg(not(feature = "fips"))]
    #[test]
    fn default_build_seeds_from_the_os_without_cpu_jitter() {
        assert!(
            ::aws_lc_rs::try_fips_cpu_jitter_entropy().is_err(),
            "AWS-LC was built with its CPU-jitter entropy source: cargo did not apply \
             AWS_LC_SYS_NO_JITTER_ENTROPY=1 from .cargo/config.toml (or the environment set it to 0)"
        );
    }

    #[cfg(feature = "fips")]
    #[test]
    fn fips_mode_allows_only_approved_algorithms() {
        let conf = |groups: Option<&str>, suites: Option<&str>| TlsConf {
            fips: Some("true".into()),
            groups: groups.map(Into::into),
            ciphersuites: suites.map(Into::into),
            ..TlsConf::default()
        };
        let p = provider(&conf(None, None)).unwrap();
        assert!(p.fips(), "{}", summary(&p));
        assert!(!groups::names(&p.kx_groups).contains(":X25519:"));
        let err = provider(&conf(Some("X25519"), None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"X25519\" is not FIPS-approved"), "{err}");
        let err = provider(&conf(None, Some("TLS_CHACHA20_POLY1305_SHA256")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not FIPS-approved"), "{err}");
    }

    #[test]
    fn tls13_names_select_exactly() {
        // ChaCha20 is not FIPS-approved: the FIPS build selects an AES suite.
        let (name, want) = if FIPS_BUILD {
            (
                "TLS_AES_128_GCM_SHA256",
                CipherSuite::TLS13_AES_128_GCM_SHA256,
            )
        } else {
            (
                "TLS_CHACHA20_POLY1305_SHA256",
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            )
        };
        let p = provider(&conf(None, Some(name))).unwrap();
        let v13: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| is_tls13(s))
            .map(|s| s.suite())
            .collect();
        assert_eq!(v13, vec![want]);
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
