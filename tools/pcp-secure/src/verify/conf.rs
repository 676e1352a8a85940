//! `tls.conf`: where it is and what it sets.

use std::io;
use std::path::PathBuf;

use pcp_secure::api::settings::{tls_conf_path, TlsConf};

use super::*;

// ---------------------------------------------------------------------------
// tls.conf

pub(super) fn tls_conf(r: &mut Report) -> (TlsConf, Option<PathBuf>) {
    const NAME: &str = "tls.conf";
    let from = if std::env::var_os("PCP_TLSCONF_PATH").is_some() {
        "PCP_TLSCONF_PATH".to_string()
    } else {
        let pcp_conf = std::env::var("PCP_CONF").unwrap_or_else(|_| "/etc/pcp.conf".into());
        format!("the PCP_TLSCONF_PATH line of {pcp_conf}")
    };
    let Some(path) = tls_conf_path() else {
        r.fail(
            NAME,
            format!("no tls.conf: PCP_TLSCONF_PATH is not set and {from} is missing"),
            "add PCP_TLSCONF_PATH=/etc/pcp/tls.conf to /etc/pcp.conf (or export PCP_TLSCONF_PATH)",
        );
        return (TlsConf::default(), None);
    };
    match TlsConf::load(&path) {
        Ok(conf) => {
            let set = set_keys(&conf);
            r.ok(
                NAME,
                format!(
                    "\"{}\" (from {from}) sets {}",
                    path.display(),
                    if set.is_empty() {
                        "nothing".to_string()
                    } else {
                        set.join(", ")
                    }
                ),
            );
            (conf, Some(path))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => {
            r.warn(
                NAME,
                format!(
                    "\"{}\" (from {from}) is not readable by this user ({e})",
                    path.display()
                ),
                "run `pcp-secure verify` as root (or as the user pmcd runs as) to check it",
            );
            (TlsConf::default(), Some(path))
        }
        Err(e) => {
            r.fail(
                NAME,
                format!("\"{}\" (from {from}): cannot read ({e})", path.display()),
                format!(
                    "create \"{}\" with tls-cert-file, tls-key-file and tls-ca-cert-file (see the README; `pcp-secure cert` makes the files)",
                    path.display()
                ),
            );
            (TlsConf::default(), Some(path))
        }
    }
}

/// The crypto the library will use with these settings: its version and
/// module (FIPS or not), the key-exchange groups; a `tls-fips`,
/// `tls-groups` or cipher setting that cannot be used fails.
pub(super) fn crypto(r: &mut Report, conf: &TlsConf) {
    const NAME: &str = "crypto";
    match pcp_secure::api::certs::provider(conf) {
        Ok(p) => r.ok(
            NAME,
            format!(
                "{}; {}",
                pcp_secure::api::version_str(),
                pcp_secure::api::certs::summary(&p)
            ),
        ),
        Err(e) => r.fail(
            NAME,
            format!("{}: {e}", pcp_secure::api::version_str()),
            if conf.fips.is_some() && !pcp_secure::api::certs::FIPS_BUILD {
                "install the FIPS build of libpcp_secure (see the README, \"Key exchange and FIPS\"), or remove tls-fips"
            } else {
                "correct the setting named (tls-groups, tls-ciphers, tls-ciphersuites or tls-fips)"
            },
        ),
    }
}

pub(super) fn set_keys(conf: &TlsConf) -> Vec<&'static str> {
    [
        ("tls-cert-file", &conf.cert_file),
        ("tls-key-file", &conf.key_file),
        ("tls-ca-cert-file", &conf.ca_cert_file),
        ("tls-ca-cert-dir", &conf.ca_cert_dir),
        ("tls-ciphers", &conf.ciphers),
        ("tls-ciphersuites", &conf.ciphersuites),
        ("tls-client-cert-file", &conf.client_cert_file),
        ("tls-client-key-file", &conf.client_key_file),
        ("tls-verify-clients", &conf.verify_clients),
        ("tls-nssdb", &conf.nssdb),
        ("tls-cert-nickname", &conf.cert_nickname),
        ("tls-nssdb-password-file", &conf.nssdb_password_file),
        ("tls-groups", &conf.groups),
        ("tls-fips", &conf.fips),
    ]
    .into_iter()
    .filter(|(_, v)| v.is_some())
    .map(|(k, _)| k)
    .collect()
}
